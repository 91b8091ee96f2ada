"""Parsing JSON that comes from outside: request bodies, NDJSON import lines.

``json.loads`` fails in more ways than ``JSONDecodeError`` on hostile input: deep nesting
raises ``RecursionError``, integers over 4,300 digits and invalid UTF-8 raise other
``ValueError``s. Every such failure becomes one :class:`JsonInputError` with a message a
client can act on, and documents nested deeper than :data:`MAX_DEPTH` are refused even when
Python could parse them, so no later recursive walk (validation, serialization) can fail.
Strings holding NUL are refused too: PostgreSQL cannot store them.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
#: PostgreSQL text cannot hold NUL characters, so no stored string may contain one.
NUL_REFUSED = "not accepted: a string contains a NUL character (\\u0000)"


class JsonInputError(ValueError):
    """The text is not JSON this service accepts; the message says why."""


def _depth(value: Any) -> int:
    """Nesting depth of a parsed document, without recursion; refuses NUL in any string."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise JsonInputError(NUL_REFUSED)
            continue
        if isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(text: str | bytes) -> Any:
    """The parsed document; :class:`JsonInputError` for anything this service refuses."""
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise JsonInputError(f"nested more than {MAX_DEPTH} levels deep") from exc
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"not valid JSON: {exc.msg} (at character {exc.pos})") from exc
    except UnicodeDecodeError as exc:
        raise JsonInputError("not valid JSON: the text is not valid UTF-8") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise JsonInputError(f"not valid JSON: {exc}") from exc
    if _depth(value) > MAX_DEPTH:
        raise JsonInputError(f"nested more than {MAX_DEPTH} levels deep")
    return value
