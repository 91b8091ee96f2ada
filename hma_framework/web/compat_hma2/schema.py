"""Field descriptors for ``/c/exchanges/api/<api>/schema`` in HMA 2.0's vocabulary.

Coop builds its exchange forms from these: ``type`` is ``string``, ``number`` (ints and
floats alike), ``boolean``, ``enum`` (with ``choices``), ``set_of_<kind>`` or
``list_of_<kind>``; ``default`` is plain JSON. (This project's own ``/exchanges/apis`` says
``integer`` and leaves out defaults; the two vocabularies stay apart.)
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

_SCALARS = {str: "string", int: "number", float: "number", bool: "boolean"}


def _kind(annotation: Any) -> tuple[str, list[Any] | None]:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "enum", [member.value for member in annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if len(present) == 1:
            return _kind(present[0])
    if origin in (set, frozenset) and args:
        return f"set_of_{_kind(args[0])[0]}", None
    if origin is list and args:
        return f"list_of_{_kind(args[0])[0]}", None
    return _SCALARS.get(annotation, "string"), None


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | list | tuple):
        return [_json_default(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def field_descriptors(cls: type | None, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``{name, type, required, default, help, choices}`` per init field of a dataclass."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return []
    hints = typing.get_type_hints(cls)
    described = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        kind, choices = _kind(hints.get(f.name))
        default: Any = None
        if f.default is not dataclasses.MISSING:
            default = _json_default(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = _json_default(f.default_factory())
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        described.append(
            {
                "name": f.name,
                "type": kind,
                "required": required,
                "default": default,
                "help": str(f.metadata.get("help", "")) if f.metadata else "",
                "choices": choices,
            }
        )
    return described
