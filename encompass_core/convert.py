"""The one converter between store documents (plain JSON values) and model classes."""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

import attrs

from .errors import StoreError

T = TypeVar("T")

# Field metadata the converter checks in documents (the classes' own defaults still serve code):
REQUIRED = "encompass.required"  # the document must hold this field, even though it has a default
ONE_OF = "encompass.one_of"  # the document's value must be one of these


def to_document(value: Any) -> Any:
    """Turn a model value (attrs instances, tuples, dicts) into plain JSON values."""
    if attrs.has(type(value)):
        return {f.name: to_document(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, tuple | list):
        return [to_document(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_document(v) for k, v in value.items()}
    return value


def from_document(cls: type[T], doc: Any, where: str = "") -> T:
    """Build a ``cls`` instance from a document, reporting the field that does not fit.

    Fields are checked against their types, and against the :data:`REQUIRED` and
    :data:`ONE_OF` entries of their metadata.
    """
    return _structure(cls, doc, where or cls.__name__)


def _structure(tp: Any, value: Any, where: str) -> Any:
    if tp is Any or tp is typing.Any:
        return value
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise StoreError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _structure(arg, value, where)
            except StoreError as exc:
                errors.append(str(exc))
        raise StoreError(errors[0] if errors else f"{where}: unexpected {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise StoreError(f"{where}: expected a list, found {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_structure(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        pairs = enumerate(zip(args, value, strict=False))
        return tuple(_structure(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    if origin is dict:
        if not isinstance(value, dict):
            raise StoreError(f"{where}: expected an object, found {type(value).__name__}")
        return dict(value)
    if isinstance(tp, type) and attrs.has(tp):
        if not isinstance(value, dict):
            raise StoreError(f"{where}: expected an object, found {type(value).__name__}")
        attrs.resolve_types(tp)
        kwargs = {}
        for field in attrs.fields(tp):
            if field.name in value:
                kwargs[field.name] = _structure(field.type, value[field.name], f"{where}.{field.name}")
                choices = field.metadata.get(ONE_OF)
                if choices is not None and kwargs[field.name] not in choices:
                    raise StoreError(f"{where}.{field.name}: {value[field.name]!r} is not one of "
                                     f"{', '.join(map(str, choices))}")
            elif field.default is attrs.NOTHING or field.metadata.get(REQUIRED):
                raise StoreError(f"{where}: missing field '{field.name}'")
        try:
            return tp(**kwargs)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{where}: {exc}") from exc
    if tp in (int, float, str, bool):
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise StoreError(f"{where}: expected {tp.__name__}, found {value!r}")
        return value
    return value
