"""SMcli's command line: ``SMcli ADDR_A [ADDR_B] (-c "cmds;" | -f FILE) [-p PASSWORD] [-o FILE]
[-S] [-e]``, its messages and its exit codes; plus the simulator's own ``--sim-*`` commands.

The state file is named by ``$SMCLI_SIM_STATE``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from . import state as state_mod
from .commands import ScriptError, Subsystem, advance_copies
from .script import ScriptSyntaxError, parse, parse_capacity
from .tgt import Tgt

STATE_ENV = "SMCLI_SIM_STATE"

# Exit codes (after the exit status table of the DS Storage Manager CLI guide).
EXIT_OK = 0
EXIT_ERROR = 1  # a script command failed; the error is shown
EXIT_NO_SCRIPT = 2  # the script file does not exist
EXIT_OUTPUT_FILE = 3  # the output file cannot be opened
EXIT_NOT_AT_ADDRESS = 4  # no storage subsystem answers at the address(es)
EXIT_INTERNAL = 12
EXIT_SYNTAX = 13
EXIT_USAGE = 15

USAGE = ('SMcli <DNS-network-name-or-IP-address> [<DNS-network-name-or-IP-address>] '
         '[-c "<command>;[<command2>;...]"] [-f <scriptfile>] [-o <outputfile>] [-p <password>] [-e] [-S]')


class Arguments:
    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.script: str | None = None
        self.script_file: str | None = None
        self.password: str | None = None
        self.output: str | None = None
        self.silent = False


def _parse_arguments(argv: list[str]) -> Arguments | None:
    args = Arguments()
    index = 0
    while index < len(argv):
        word = argv[index]
        takes_value = {"-c": "script", "-f": "script_file", "-p": "password", "-o": "output"}
        if word in takes_value:
            if index + 1 >= len(argv):
                return None
            setattr(args, takes_value[word], argv[index + 1])
            index += 2
            continue
        if word == "-S":
            args.silent = True
        elif word == "-e":
            pass  # skip the syntax check: the simulator always checks
        elif word.startswith("-"):
            return None
        else:
            args.addresses.append(word)
        index += 1
    if not 1 <= len(args.addresses) <= 2 or (args.script is None) == (args.script_file is None):
        return None
    return args


def main(argv: list[str]) -> int:
    if argv and argv[0].startswith("--sim-"):
        return admin(argv)
    args = _parse_arguments(argv)
    if args is None:
        print(f"Incorrect usage.\n\n{USAGE}")
        return EXIT_USAGE
    out: list[str] = []
    code = run(args, out)
    text = "\n".join(out) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as file:
                file.write(text)
        except OSError as error:
            print(f"An error occurred while opening the output file {args.output}: {error.strerror}.")
            return EXIT_OUTPUT_FILE
    else:
        sys.stdout.write(text)
    return code


def run(args: Arguments, out: list[str]) -> int:
    path = os.environ.get(STATE_ENV)
    if not path or not os.path.exists(path):
        out += [f"Internal error: the simulator's state file is not set (${STATE_ENV}).", "",
                "SMcli failed."]
        return EXIT_INTERNAL
    if args.script_file is not None:
        try:
            with open(args.script_file, encoding="utf-8") as file:
                args.script = file.read()
        except OSError:
            out += [f"The script file {args.script_file} does not exist.", "", "SMcli failed."]
            return EXIT_NO_SCRIPT
    assert args.script is not None
    with state_mod.locked(path):
        state = state_mod.load(path)
        controllers = state["subsystem"]["controllers"].values()
        reachable = [c for c in controllers if c["address"] in args.addresses and c["online"]]
        if not reachable:
            out += [f"Unable to communicate with the storage subsystem at "
                    f"{' and '.join(args.addresses)}: no controller answered.", "",
                    "SMcli failed."]
            return EXIT_NOT_AT_ADDRESS
        if not args.silent:
            out += ["Performing syntax check...", ""]
        try:
            commands = parse(args.script)
        except ScriptSyntaxError as error:
            out += [f"Syntax error at {error}.", "", "SMcli failed."]
            return EXIT_SYNTAX
        password = state["subsystem"]["password"]
        subsystem = Subsystem(state, Tgt(state["iscsi"]["tgt_control"]),
                              password_ok=not password or args.password == password)
        for command in commands:
            if subsystem.handler(command) is None:
                out += [f"Syntax error at line {command.line}: unknown command '{command.text}'.", "",
                        "SMcli failed."]
                return EXIT_SYNTAX
        if not args.silent:
            out += ["Syntax check complete.", "", "Executing script...", ""]
        advance_copies(state)
        code = EXIT_OK
        for number, command in enumerate(commands, 1):
            try:
                shown = subsystem.run(command)
            except ScriptError as error:
                out += [f"An error occurred while executing command {number} at line {command.line}: "
                        f"{' '.join(command.text.split()[:2])}.",
                        f"Error {error.code} - {error.text}", "Script execution halted.", "",
                        "SMcli failed."]
                code = EXIT_ERROR
                break
            if shown:
                out.append(shown)
        state_mod.save(path, state)
    if code == EXIT_OK:
        if not args.silent:
            out += ["Script execution complete.", ""]
        out.append("SMcli completed successfully.")
    return code


def admin(argv: list[str]) -> int:
    """``--sim-init KEY=VALUE...``, ``--sim-set DOTTED.KEY=JSON``, ``--sim-dump``."""
    path = os.environ.get(STATE_ENV)
    if not path:
        print(f"set ${STATE_ENV}", file=sys.stderr)
        return EXIT_USAGE
    options = dict(item.split("=", 1) for item in argv[1:])
    if argv[0] == "--sim-init":
        arrays = {number: parse_capacity(size) for number, _, size in
                  (item.partition(":") for item in options["arrays"].split(","))}
        os.makedirs(options["data_dir"], exist_ok=True)
        state = state_mod.new_state(
            options.get("name", "DS4700-sim"), options["controllers"].split(","), arrays,
            options["portal"], int(options["tgt_control"]), options["data_dir"],
            options.get("password"), int(options.get("copy_rate", "0")))
        with state_mod.locked(path):
            state_mod.save(path, state)
        return EXIT_OK
    with state_mod.locked(path):
        state = state_mod.load(path)
        if argv[0] == "--sim-dump":
            print(json.dumps(state, indent=1, sort_keys=True))
            return EXIT_OK
        if argv[0] == "--sim-set":
            for dotted, value in options.items():
                _set(state, dotted.split("."), json.loads(value))
            state_mod.save(path, state)
            return EXIT_OK
    print(f"unknown simulator command {argv[0]}", file=sys.stderr)
    return EXIT_USAGE


def _set(state: dict[str, Any], keys: list[str], value: Any) -> None:
    target = state
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
