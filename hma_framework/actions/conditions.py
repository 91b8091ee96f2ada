"""Conditions over match labels: what ``must_have`` and ``must_not_have`` hold.

Conditions are JSON objects, structured by cattrs into attrs records:

* ``{"label": "bank", "equals": "known"}``, ``{"label": "tag", "in": ["csam", "terror"]}``,
  ``{"label": "exchange"}`` (any value): the labels in :data:`labels.LABEL_NAMES`;
* ``{"field": "uploader", "equals": "42"}``, ``{"field": "priority"}``: the submission's
  ``additional_fields`` (``uploader:42`` is key ``uploader``, value ``42``);
* ``{"max_distance": 10}``, ``{"min_distance": 1}``: bounds on the match distance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import transform_error

from hma_framework.actions.errors import InvalidActionInput
from hma_framework.actions.labels import LABEL_NAMES, MatchLabels

MAX_CONDITIONS = 50


class RuleError(InvalidActionInput):
    """A rule that cannot be stored; the message says which part is wrong and why."""


def _known_label(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value not in LABEL_NAMES:
        raise ValueError(f"unknown label {value!r}; labels are {', '.join(LABEL_NAMES)}")


def _not_empty(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and len(value) == 0:
        raise ValueError(f"{attribute.name} must not be empty")


def _one_test(equals: str | None, any_of: tuple[str, ...] | None) -> None:
    if equals is not None and any_of is not None:
        raise ValueError("give 'equals' or 'in', not both")


@attrs.frozen
class LabelCondition:
    """A label has a value (``equals``), one of several (``in``), or any value at all."""

    label: str = attrs.field(validator=_known_label)
    equals: str | None = None
    any_of: tuple[str, ...] | None = attrs.field(default=None, validator=_not_empty)

    def __attrs_post_init__(self) -> None:
        _one_test(self.equals, self.any_of)

    def holds(self, match: MatchLabels) -> bool:
        values = match.values(self.label)
        if self.equals is not None:
            return self.equals in values
        if self.any_of is not None:
            return not values.isdisjoint(self.any_of)
        return bool(values)


@attrs.frozen
class FieldCondition:
    """The submission has an ``additional_fields`` entry with this key (and value)."""

    field: str = attrs.field(validator=_not_empty)
    equals: str | None = None
    any_of: tuple[str, ...] | None = attrs.field(default=None, validator=_not_empty)

    def __attrs_post_init__(self) -> None:
        _one_test(self.equals, self.any_of)

    def holds(self, match: MatchLabels) -> bool:
        values = match.field_values(self.field)
        if self.equals is not None:
            return self.equals in values
        if self.any_of is not None:
            return any(v in self.any_of for v in values)
        return bool(values)


def _distance(_instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be 0 or more")


@attrs.frozen
class DistanceCondition:
    """The match distance is within bounds (both inclusive)."""

    max_distance: int | None = attrs.field(default=None, validator=_distance)
    min_distance: int | None = attrs.field(default=None, validator=_distance)

    def holds(self, match: MatchLabels) -> bool:
        if self.max_distance is not None and match.distance > self.max_distance:
            return False
        return self.min_distance is None or match.distance >= self.min_distance


Condition = LabelCondition | FieldCondition | DistanceCondition


def _strict(kind: type) -> Any:
    def structure(value: Any, _type: type) -> Any:
        # JSON true is not an integer here, and 5 is not the string "5".
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"expected {'a string' if kind is str else 'an integer'}")
        return value

    return structure


def _string_tuple(value: Any, _type: type) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def make_condition_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _strict(str))
    converter.register_structure_hook(int, _strict(int))
    converter.register_structure_hook_func(lambda cls: cls == tuple[str, ...], _string_tuple)
    for cls in (LabelCondition, FieldCondition):
        in_key = override(rename="in", omit_if_default=True)
        converter.register_structure_hook(
            cls,
            make_dict_structure_fn(cls, converter, any_of=in_key, _cattrs_forbid_extra_keys=True),
        )
        converter.register_unstructure_hook(
            cls,
            make_dict_unstructure_fn(cls, converter, any_of=in_key, _cattrs_omit_if_default=True),
        )
    converter.register_unstructure_hook(
        DistanceCondition,
        make_dict_unstructure_fn(DistanceCondition, converter, _cattrs_omit_if_default=True),
    )
    return converter


_CONVERTER = make_condition_converter()
_KINDS: tuple[tuple[str, type[Condition]], ...] = (
    ("label", LabelCondition),
    ("field", FieldCondition),
    ("max_distance", DistanceCondition),
    ("min_distance", DistanceCondition),
)


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return "unknown key(s) " + ", ".join(sorted(exc.extra_fields))
    if isinstance(exc, KeyError):
        return "required key missing"
    return str(exc) or type(exc).__name__


def parse_condition(raw: Any, where: str) -> Condition:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: a condition is a JSON object, not {type(raw).__name__}")
    kind = next((cls for key, cls in _KINDS if key in raw), None)
    if kind is None:
        raise RuleError(
            f"{where}: a condition needs 'label', 'field', 'max_distance' or 'min_distance'"
        )
    try:
        return _CONVERTER.structure(raw, kind)
    except cattrs.BaseValidationError as exc:
        details = transform_error(exc, path="", format_exception=_format)
        raise RuleError(f"{where}: " + "; ".join(_tidy(d) for d in details)) from exc
    except (ValueError, TypeError) as exc:
        raise RuleError(f"{where}: {exc}") from exc


def _tidy(detail: str) -> str:
    message, _, location = detail.rpartition(" @ ")
    location = location.lstrip(".").replace("any_of", "in")
    return f"{location}: {message}" if location else message


def parse_conditions(raw: Any, name: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RuleError(f"{name} must be a list of conditions")
    if len(raw) > MAX_CONDITIONS:
        raise RuleError(f"{name} has more than {MAX_CONDITIONS} conditions")
    return tuple(parse_condition(item, f"{name}[{i}]") for i, item in enumerate(raw))


def conditions_json(conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    return [_CONVERTER.unstructure(condition) for condition in conditions]
