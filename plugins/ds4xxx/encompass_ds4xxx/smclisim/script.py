"""The script language of SMcli: tokens, commands, and the parse of one command's words.

A script is commands ended by ``;``. A command is keywords (case-insensitive), bracketed lists
of quoted labels (``logicalDrive ["a" "b"]``, ``target ["t"]``) and ``name=value`` parameters,
whose value is a word, a quoted string, a number with a unit (``capacity=8 MB``) or a
parenthesised list (``drives=(1,1 1,2)``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

_TOKEN = re.compile(r'\s+|"((?:[^"\\]|\\.)*)"|([\[\]();=,])|([^\s\[\]();=",]+)')
UNITS = ("bytes", "kb", "mb", "gb", "tb")


class ScriptSyntaxError(Exception):
    """A script SMcli would refuse at its syntax check."""


class Token(NamedTuple):
    kind: str  # word | string | punct
    text: str


class Command:
    """One parsed command: its keywords, label lists (by the keyword before each) and
    parameters (names lowercased)."""

    def __init__(self, line: int, text: str) -> None:
        self.line = line
        self.text = text
        self.keywords: list[str] = []
        self.lists: dict[str, list[str]] = {}
        self.params: dict[str, str] = {}
        self.flags: list[str] = []  # keywords after the first parameter or list

    def verb(self, size: int) -> tuple[str, ...]:
        return tuple(self.keywords[:size])


def tokenize(text: str) -> list[tuple[int, Token]]:
    """``(line, token)`` pairs; an unterminated string is a syntax error."""
    tokens = []
    position, line = 0, 1
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ScriptSyntaxError(f"line {line}: unterminated quoted string")
        string, punct, word = match.groups()
        if string is not None:
            tokens.append((line, Token("string", string.replace('\\"', '"'))))
        elif punct is not None:
            tokens.append((line, Token("punct", punct)))
        elif word is not None:
            tokens.append((line, Token("word", word)))
        line += match.group(0).count("\n")
        position = match.end()
    return tokens


def parse(text: str) -> list[Command]:
    """Every command of a script, parsed (the syntax check)."""
    commands: list[Command] = []
    current: list[tuple[int, Token]] = []
    for line, token in tokenize(text):
        if token.kind == "punct" and token.text == ";":
            if current:
                commands.append(_command(current, text))
            current = []
        else:
            current.append((line, token))
    if current:
        raise ScriptSyntaxError(f"line {current[0][0]}: the last command does not end with ';'")
    return commands


def _command(tokens: list[tuple[int, Token]], source: str) -> Command:
    line = tokens[0][0]
    shown = " ".join(f'"{t.text}"' if t.kind == "string" else t.text for _, t in tokens)
    command = Command(line=line, text=shown)
    items = [token for _, token in tokens]
    index = 0
    started = False  # a list or a parameter was seen: later words are flags
    while index < len(items):
        token = items[index]
        following = items[index + 1] if index + 1 < len(items) else None
        if token.kind == "word" and following is not None and following.text == "=":
            value, index = _value(items, index + 2, line, token.text)
            command.params[token.text.lower()] = value
            started = True
            continue
        if token.kind == "word" and following is not None and following.text == "[":
            labels, index = _labels(items, index + 2, line)
            command.lists[token.text.lower()] = labels
            if not started:  # set logicalDrive [...]: the list's keyword names the command too
                command.keywords.append(token.text.lower())
            started = True
            continue
        if token.kind == "word":
            (command.flags if started else command.keywords).append(token.text.lower())
            index += 1
            continue
        raise ScriptSyntaxError(f"line {line}: unexpected {token.text!r} in '{shown}'")
    if not command.keywords:
        raise ScriptSyntaxError(f"line {line}: a command starts with a keyword, found '{shown}'")
    return command


def _value(items: list[Token], index: int, line: int, name: str) -> tuple[str, int]:
    if index >= len(items):
        raise ScriptSyntaxError(f"line {line}: parameter {name} has no value")
    token = items[index]
    if token.kind == "punct" and token.text == "(":
        parts = []
        index += 1
        while index < len(items) and items[index].text != ")":
            if items[index].text != ",":
                parts.append(items[index].text)
            index += 1
        if index >= len(items):
            raise ScriptSyntaxError(f"line {line}: parameter {name}: '(' without ')'")
        return " ".join(parts), index + 1
    if token.kind == "punct":
        raise ScriptSyntaxError(f"line {line}: parameter {name} has no value")
    following = items[index + 1] if index + 1 < len(items) else None
    if (token.kind == "word" and following is not None and following.kind == "word"
            and following.text.lower() in UNITS):
        return f"{token.text} {following.text}", index + 2
    return token.text, index + 1


def _labels(items: list[Token], index: int, line: int) -> tuple[list[str], int]:
    labels = []
    while index < len(items) and items[index].text != "]":
        if items[index].kind not in ("string", "word"):
            raise ScriptSyntaxError(f"line {line}: a list holds quoted labels")
        labels.append(items[index].text)
        index += 1
    if index >= len(items):
        raise ScriptSyntaxError(f"line {line}: '[' without ']'")
    return labels, index + 1


def parse_capacity(text: str) -> int:
    """``8 MB``, ``8388608 Bytes``, ``1.5 GB`` (units of 1024) as bytes, rounded up to 512."""
    match = re.fullmatch(r"([0-9][0-9,]*(?:\.[0-9]+)?)\s*([A-Za-z]+)", text.strip())
    if match is None or match.group(2).lower() not in UNITS:
        raise ValueError(f"capacity {text!r} is not a number and a unit (Bytes, KB, MB, GB, TB)")
    number = float(match.group(1).replace(",", ""))
    size = int(number * 1024 ** UNITS.index(match.group(2).lower()))
    return -(-size // 512) * 512


def format_capacity(size: int) -> str:
    """A capacity as SMcli shows it: three decimals in the largest unit that fits."""
    for power, unit in ((4, "TB"), (3, "GB"), (2, "MB"), (1, "KB")):
        if size >= 1024 ** power:
            return f"{size / 1024 ** power:,.3f} {unit}"
    return f"{size} Bytes"
