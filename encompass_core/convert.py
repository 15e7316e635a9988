"""The one converter between store documents (plain JSON values) and model classes."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

import attrs

from .errors import StoreError

T = TypeVar("T")

# Field metadata the converter checks in documents (the classes' own defaults still serve code):
REQUIRED = "encompass.required"  # the document must hold this field, even though it has a default
ONE_OF = "encompass.one_of"  # the document's value must be one of these


def tuple_of(value: Iterable[Any]) -> tuple[Any, ...]:
    """The field converter of tuple fields: ``value`` as a tuple.

    Not ``converter=tuple``: attrs reads each converter's signature when it builds the class, and
    a builtin's is parsed from its text by the tokenizer (whose first use compiles a large regular
    expression): importing the model, the records and the settings took 42 ms with it, 26 ms
    without.
    """
    return tuple(value)


_SCALARS = (str, int, float, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def to_document(value: Any) -> Any:
    """Turn a model value (attrs instances, tuples, dicts) into plain JSON values."""
    cls = type(value)
    if cls in _SCALARS:
        return value
    names = _FIELD_NAMES.get(cls)
    if names is None and attrs.has(cls):
        names = _FIELD_NAMES[cls] = tuple(f.name for f in attrs.fields(cls))
    if names is not None:
        return {name: to_document(getattr(value, name)) for name in names}
    if isinstance(value, tuple | list):
        return [to_document(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_document(v) for k, v in value.items()}
    return value


def from_document(cls: type[T], doc: Any, where: str = "") -> T:
    """Build a ``cls`` instance from a document, reporting the field that does not fit.

    Fields are checked against their types, and against the :data:`REQUIRED` and
    :data:`ONE_OF` entries of their metadata. Each class's converter is built once and cached:
    reading thousands of documents pays no type introspection.
    """
    try:
        return _converter(cls)(doc)
    except _Misfit as misfit:
        raise StoreError(f"{where or cls.__name__}{''.join(reversed(misfit.path))}: "
                         f"{misfit.message}") from None


class _Misfit(Exception):
    """A value that does not fit; ``path`` grows (innermost first) as it propagates out."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.path: list[str] = []


_CONVERTERS: dict[Any, Any] = {}


def _converter(tp: Any):
    """The function turning a document value into ``tp`` (raising :class:`_Misfit`)."""
    try:
        return _CONVERTERS[tp]
    except (KeyError, TypeError):
        pass
    made = _make_converter(tp)
    try:
        _CONVERTERS[tp] = made
    except TypeError:
        pass  # an unhashable type: built again next time
    return made


def _inside(step: str, convert, value: Any) -> Any:
    try:
        return convert(value)
    except _Misfit as misfit:
        misfit.path.append(step)
        raise


def _make_converter(tp: Any):
    if tp is Any or tp is typing.Any:
        return _same
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return _literal(typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(tp))
    if origin is tuple:
        return _tuple(typing.get_args(tp))
    if origin is dict:
        return _mapping
    if isinstance(tp, type) and attrs.has(tp):
        return _attrs_class(tp)
    if tp in (int, float, str, bool):
        return _scalar(tp)
    return _same


def _same(value: Any) -> Any:
    return value


def _literal(allowed: tuple[Any, ...]):
    def convert(value: Any) -> Any:
        if value not in allowed:
            raise _Misfit(f"{value!r} is not one of {allowed}")
        return value

    return convert


def _union(args: tuple[Any, ...]):
    optional = type(None) in args
    choices = [_converter(arg) for arg in args if arg is not type(None)]

    def convert(value: Any) -> Any:
        if value is None and optional:
            return None
        first = None
        for choice in choices:
            try:
                return choice(value)
            except _Misfit as misfit:
                first = first or misfit
        raise first or _Misfit(f"unexpected {value!r}")

    return convert


def _tuple(args: tuple[Any, ...]):
    if len(args) == 2 and args[1] is Ellipsis:
        item = _converter(args[0])

        def convert(value: Any) -> Any:
            if not isinstance(value, list | tuple):
                raise _Misfit(f"expected a list, found {type(value).__name__}")
            return tuple(_inside(f"[{i}]", item, v) for i, v in enumerate(value))

        return convert
    items = [_converter(arg) for arg in args]

    def convert_fixed(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise _Misfit(f"expected a list, found {type(value).__name__}")
        return tuple(_inside(f"[{i}]", c, v) for i, (c, v) in enumerate(zip(items, value, strict=False)))

    return convert_fixed


def _mapping(value: Any) -> Any:
    if not isinstance(value, dict):
        raise _Misfit(f"expected an object, found {type(value).__name__}")
    return dict(value)


def _attrs_class(tp: type):
    careful = _careful_attrs_class(tp)
    fast = _fast_attrs_class(tp)

    def convert(value: Any) -> Any:
        try:
            return fast(value)
        except (_Slow, _Misfit, TypeError, ValueError):
            return careful(value)  # says which field does not fit, or accepts what fast did not

    return convert


def _careful_attrs_class(tp: type):
    attrs.resolve_types(tp)
    fields = [(f.name, _converter(f.type), f.metadata.get(ONE_OF),
               f.default is attrs.NOTHING or bool(f.metadata.get(REQUIRED)))
              for f in attrs.fields(tp)]

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Misfit(f"expected an object, found {type(value).__name__}")
        kwargs = {}
        for name, field_converter, choices, required in fields:
            if name in value:
                raw = value[name]
                try:
                    converted = field_converter(raw)
                except _Misfit as misfit:
                    misfit.path.append(f".{name}")
                    raise
                if choices is not None and converted not in choices:
                    misfit = _Misfit(f"{raw!r} is not one of {', '.join(map(str, choices))}")
                    misfit.path.append(f".{name}")
                    raise misfit
                kwargs[name] = converted
            elif required:
                raise _Misfit(f"missing field '{name}'")
        try:
            return tp(**kwargs)
        except (TypeError, ValueError) as exc:
            raise _Misfit(str(exc)) from exc

    return convert


def _scalar(tp: type):
    if tp is float:
        def convert_float(value: Any) -> Any:
            if isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            if not isinstance(value, float):
                raise _Misfit(f"expected float, found {value!r}")
            return value

        return convert_float

    def convert(value: Any) -> Any:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise _Misfit(f"expected {tp.__name__}, found {value!r}")
        return value

    return convert


# -- the fast path -------------------------------------------------------------------------------
# Reading a listing converts thousands of documents; the careful converters above cost a Python
# call or two per field. Each attrs class also gets one function generated for it that checks
# the usual shapes inline (exact JSON types, None, literals, lists of classes) and gives up
# (:class:`_Slow`) on anything else: then the careful converter runs and decides, so what is
# accepted and every message stay the careful converter's.


class _Slow(Exception):
    """The fast path met a value it does not check itself."""


_FAST: dict[type, Any] = {}


def _fast_attrs_class(tp: type):
    """The generated fast converter of attrs class ``tp`` (cached)."""
    made = _FAST.get(tp)
    if made is None:
        _FAST[tp] = _careful_only(tp)  # a class reached again while being built takes this
        made = _FAST[tp] = _generate(tp)
    return made


def _careful_only(tp: type):
    def convert(value: Any) -> Any:
        return _converter(tp)(value)

    return convert


def _generate(tp: type):
    attrs.resolve_types(tp)
    namespace: dict[str, Any] = {"_Slow": _Slow, "TP": tp}
    lines = ["def convert(value):",
             "    if value.__class__ is not dict:",
             "        raise _Slow",
             "    kw = {}"]
    for number, field in enumerate(attrs.fields(tp)):
        required = field.default is attrs.NOTHING or bool(field.metadata.get(REQUIRED))
        lines.append(f"    if {field.name!r} in value:")
        lines.append(f"        x = value[{field.name!r}]")
        lines += _checks(field.type, "x", namespace, "        ", f"f{number}")
        choices = field.metadata.get(ONE_OF)
        if choices is not None:
            namespace[f"one_of_{number}"] = frozenset(choices)
            lines.append(f"        if x not in one_of_{number}:")
            lines.append("            raise _Slow")
        lines.append(f"        kw[{field.name!r}] = x")
        if required:
            lines.append("    else:")
            lines.append("        raise _Slow")
    lines.append("    return TP(**kw)")
    exec(compile("\n".join(lines), f"<fast converter of {tp.__name__}>", "exec"), namespace)  # noqa: S102
    return namespace["convert"]


_EXACT = {str: "str", bool: "bool", int: "int"}


def _checks(tp: Any, var: str, namespace: dict[str, Any], indent: str, key: str) -> list[str]:
    """Source lines leaving in ``var`` the value of type ``tp`` it holds, or raising _Slow."""
    if tp is Any or tp is typing.Any:
        return []
    if tp in _EXACT:  # exact classes: a bool is not taken for an int, nor a subclass for a str
        return [f"{indent}if {var}.__class__ is not {_EXACT[tp]}:", f"{indent}    raise _Slow"]
    if tp is float:
        return [f"{indent}if {var}.__class__ is int:", f"{indent}    {var} = float({var})",
                f"{indent}elif {var}.__class__ is not float:", f"{indent}    raise _Slow"]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        (inner,) = [arg for arg in args if arg is not type(None)]
        body = _checks(inner, var, namespace, indent + "    ", key)
        return [f"{indent}if {var} is not None:", *body] if body else []
    if origin is typing.Literal:
        namespace[f"literal_{key}"] = frozenset(args)
        return [f"{indent}if {var} not in literal_{key}:", f"{indent}    raise _Slow"]
    if origin is dict:
        return [f"{indent}if {var}.__class__ is not dict:", f"{indent}    raise _Slow",
                f"{indent}{var} = dict({var})"]
    if isinstance(tp, type) and attrs.has(tp):
        namespace[f"class_{key}"] = _fast_attrs_class(tp)
        return [f"{indent}{var} = class_{key}({var})"]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        lines = [f"{indent}if {var}.__class__ is not list and {var}.__class__ is not tuple:",
                 f"{indent}    raise _Slow"]
        item = args[0]
        if isinstance(item, type) and attrs.has(item):
            namespace[f"item_{key}"] = _fast_attrs_class(item)
            return [*lines, f"{indent}{var} = tuple([item_{key}(v) for v in {var}])"]
        if item in _EXACT:
            return [*lines, f"{indent}for v in {var}:", f"{indent}    if v.__class__ is not {_EXACT[item]}:",
                    f"{indent}        raise _Slow", f"{indent}{var} = tuple({var})"]
    if origin is tuple and args and all(arg in _EXACT for arg in args):  # (image, index)
        lines = [f"{indent}if ({var}.__class__ is not list and {var}.__class__ is not tuple)"
                 f" or len({var}) != {len(args)}:", f"{indent}    raise _Slow"]
        for place, arg in enumerate(args):
            lines += [f"{indent}if {var}[{place}].__class__ is not {_EXACT[arg]}:",
                      f"{indent}    raise _Slow"]
        return [*lines, f"{indent}{var} = tuple({var})"]
    # Anything else (unions of several types...): the careful converter of that type.
    namespace[f"careful_{key}"] = _converter(tp)
    return [f"{indent}{var} = careful_{key}({var})"]


# -- summaries: what a listing reads ---------------------------------------------------------------
def summaries_from_documents(docs: Iterable[Any]) -> list[Any]:
    """The :class:`~encompass_core.model.ImageSummary` of each image document, or None for one
    this does not check itself: the caller converts that one whole (:func:`from_document`),
    which accepts it or names the field that does not fit.

    A listing of thousands of images needs a dozen values of each, not whole records; the
    values are checked as the converter checks them (exact JSON types, ``kind`` and ``state``
    among the allowed), so nothing is listed that :func:`from_document` would refuse there.
    """
    from .lifecycle import STATES
    from .model import ImageKind, ImageSummary

    kinds, states = frozenset(typing.get_args(ImageKind)), frozenset(STATES)
    found: list[Any] = []
    for doc in docs:
        summary = None
        try:
            get = doc.get
            name, kind, state, volumes = doc["name"], doc["kind"], doc["state"], doc["volumes"]
            version, master, parent = get("version"), get("master"), get("parent")
            master_version, machine, error = get("master_version"), get("machine"), get("error")
            if (name.__class__ is str and kind in kinds and state.__class__ is str and state in states
                    and volumes.__class__ is list
                    and (version is None or version.__class__ is int)
                    and (master_version is None or master_version.__class__ is int)
                    and (master is None or master.__class__ is str)
                    and (parent is None or parent.__class__ is str)
                    and (machine is None or machine.__class__ is str)
                    and (error is None or error.__class__ is str)):
                pools, size = set(), 0
                for volume in volumes:
                    pool, volume_size = volume["pool"], volume.get("size", 0)
                    if pool.__class__ is not str or volume_size.__class__ is not int:
                        raise TypeError
                    pools.add(pool)
                    size += volume_size
                summary = ImageSummary(name, kind, state, version, master, parent, master_version, machine,
                                       error, tuple(sorted(pools)), len(volumes), size)
        except (KeyError, TypeError, AttributeError):  # not the usual shape: converted whole
            summary = None
        found.append(summary)
    return found
