"""Typed (de)serialisation of message dataclasses to a JSON body plus named arrays.

A message is a frozen dataclass. Its scalar fields go to the JSON body, ``np.ndarray`` fields
travel as raw array frames (nested dataclasses contribute ``parent.child`` names; an optional
array, ``np.ndarray | None``, is simply absent when None). Decoding
checks every field's type against the annotations and names the field that is wrong; unknown
body keys are ignored so a newer minor version can add fields.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from .errors import InvalidArgument, MalformedField, ProtocolError

T = TypeVar("T")

_MAX_STRING = 8192
_MAX_ITEMS = 256
#: Code points that are not text: lone surrogates (JSON can spell them as "\ud800", but no
#: UTF-8 encoder, tokenizer or log file takes them) and the 66 Unicode noncharacters.
_NOT_TEXT = re.compile(
    "[\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "]"
)


def to_parts(obj: Any, prefix: str = "") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a dataclass instance into (JSON body, arrays by wire name)."""
    body: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            arrays[prefix + f.name] = value
        elif value is None and _hints(type(obj))[f.name] == np.ndarray | None:
            continue  # an absent optional array
        elif dataclasses.is_dataclass(value):
            sub_body, sub_arrays = to_parts(value, f"{prefix}{f.name}.")
            body[f.name] = sub_body
            arrays.update(sub_arrays)
        else:
            body[f.name] = _to_json(value)
    return body, arrays


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body, arrays = to_parts(value)
        if arrays:
            raise ProtocolError(f"{type(value).__name__} inside a list cannot carry arrays")
        return body
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def from_parts(
    cls: type[T], body: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str = ""
) -> T:
    """Build ``cls`` from a body and arrays, raising ProtocolError that names the bad field."""
    if not isinstance(body, Mapping):
        name = prefix.rstrip(".") or "body"
        raise MalformedField(f"field {name!r} must be an object", field=name)
    kwargs: dict[str, Any] = {}
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")  # a bug in the caller, not bad input
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        name = prefix + f.name
        if annotation is np.ndarray or annotation == np.ndarray | None:
            if name in arrays:
                kwargs[f.name] = arrays[name]
            elif annotation is np.ndarray:
                raise MalformedField(f"array {name!r} is missing", field=name)
            continue
        if f.name not in body:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise MalformedField(f"field {name!r} is missing", field=name)
            continue
        kwargs[f.name] = _convert(annotation, body[f.name], name, arrays)
    return cls(**kwargs)


#: Each dataclass's resolved annotations (``get_type_hints`` evaluates them: done once per class).
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _convert(annotation: Any, value: Any, name: str, arrays: Mapping[str, np.ndarray]) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, name, arrays)
    if annotation is Any:
        return _check_plain_json(value, name)
    if annotation is bool:
        if not isinstance(value, bool):
            raise _type_error(name, "a boolean", value)
        return value
    if annotation is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(name, "an integer", value)
        return value
    if annotation is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _type_error(name, "a number", value)
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _type_error(name, "a string", value)
        if len(value) > _MAX_STRING:
            raise MalformedField(
                f"field {name!r} is longer than {_MAX_STRING} characters", field=name
            )
        check_text(name, value)
        return value
    if origin is tuple:
        if not isinstance(value, list) or len(value) > _MAX_ITEMS:
            raise _type_error(name, f"a list of at most {_MAX_ITEMS} items", value)
        return tuple(_convert(args[0], v, f"{name}[{i}]", arrays) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or len(value) > _MAX_ITEMS:
            raise _type_error(name, f"an object of at most {_MAX_ITEMS} keys", value)
        return {str(k): _convert(args[1], v, f"{name}.{k}", arrays) for k, v in value.items()}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return from_parts(annotation, value, arrays, f"{name}.")
    raise TypeError(f"unsupported annotation {annotation!r} on {name}")  # a bug in a message class


def check_text(name: str, value: str) -> None:
    """Refuse strings that are not Unicode text, so nothing kept from a message can break an
    encoder later (a reply, a log line, a tokenizer)."""
    bad = _NOT_TEXT.search(value)
    if bad is not None:
        code_point = ord(bad.group())
        kind = "a lone surrogate" if 0xD800 <= code_point <= 0xDFFF else "a noncharacter"
        raise InvalidArgument(
            name,
            f"field {name!r} is not valid Unicode text: {kind} U+{code_point:04X} at "
            f"character {bad.start()}",
            allowed="Unicode text without lone surrogates or noncharacters",
        )


def _check_plain_json(value: Any, name: str) -> Any:
    if isinstance(value, dict | list):
        raise _type_error(name, "a string, number, boolean or null", value)
    if isinstance(value, str):
        check_text(name, value)
    return value


def _type_error(name: str, expected: str, value: Any) -> MalformedField:
    return MalformedField(
        f"field {name!r} must be {expected}, got {type(value).__name__}", field=name
    )
