"""HMA 2.0's bank curation: ``/c/banks`` and ``/c/bank/<name>``.

Banks are this project's banks: ``matching_enabled_ratio`` is stored beside the bank's
switch (0 is "off"), so a bank switched off through ``/banks`` reads as ratio 0 here and a
ratio set here switches it for ``/lookup`` too. New names follow HMA 2.0's ``UPPER_SNAKE``.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import IntegrityError

from hma_framework.exchanges.configs import exchanges_of
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks
from hma_framework.web.api_schema import (
    BOOL,
    NUM,
    STR,
    array,
    errors,
    obj,
    operation,
)
from hma_framework.web.compat_hma2.auth import compat_view
from hma_framework.web.compat_hma2.hashing import runtime
from hma_framework.web.compat_hma2.inputs import param, to_bool, to_ratio
from hma_framework.web.errors import ApiError

blueprint = Blueprint("hma2_banks", __name__)
_BANK_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
HMA2_BANK = obj(name=STR, matching_enabled_ratio=NUM)
#: Parameters come as JSON, form fields or the query string, as HMA 2.0 took them.
HMA2_BANK_INPUT = obj(
    {
        "name": STR,
        "enabled_ratio": NUM,
        "matching_enabled_ratio": NUM,
        "enabled": BOOL,
    }
)


def bank_view(bank: dict[str, Any]) -> dict[str, Any]:
    return {"name": bank["name"], "matching_enabled_ratio": bank["matching_enabled_ratio"]}


def bank_or_404(name: str, message: str | None = None) -> dict[str, Any]:
    bank = BankQueries(runtime().store).bank(name)
    if bank is None:
        raise ApiError(404, message or f"bank '{name}' not found")
    return bank


def _checked_name(name: Any) -> str:
    if not isinstance(name, str) or not _BANK_NAME.fullmatch(name):
        raise ApiError(400, "Bank names must be UPPER_WITH_UNDERSCORE")
    return name


def _ratio_from_request() -> float | None:
    """``enabled_ratio`` (HMA 2.0), ``matching_enabled_ratio`` (its response's name, which
    the Ruby client sends) or ``enabled``; numbers and booleans may come as strings."""
    for name in ("enabled_ratio", "matching_enabled_ratio"):
        value = param(name)
        if value is not None:
            return to_ratio(value, name)
    enabled = param("enabled")
    if enabled is not None:
        return 1.0 if to_bool(enabled, "enabled") else 0.0
    return None


@blueprint.get("/c/banks")
@compat_view("read")
@operation("HMA 2.0: list banks", responses={200: array(HMA2_BANK)})
def list_banks() -> Response:
    return jsonify([bank_view(b) for b in BankQueries(runtime().store).banks()])


@blueprint.get("/c/bank/<bank_name>")
@compat_view("read")
@operation("HMA 2.0: a bank", responses={200: HMA2_BANK})
def get_bank(bank_name: str) -> Response:
    return jsonify(bank_view(bank_or_404(bank_name)))


@blueprint.post("/c/banks")
@compat_view("admin")
@operation(
    "HMA 2.0: create a bank",
    request=HMA2_BANK_INPUT,
    request_required=False,
    responses={201: HMA2_BANK},
)
def create_bank() -> tuple[Response, int]:
    name = _checked_name(param("name"))
    ratio = _ratio_from_request()
    try:
        Banks(runtime().store).create_bank(
            name, matching_enabled_ratio=1.0 if ratio is None else ratio
        )
    except IntegrityError:
        raise ApiError(403, "Bank already exists") from None
    return jsonify(bank_view(bank_or_404(name))), 201


@blueprint.put("/c/bank/<bank_name>")
@compat_view("admin")
@operation(
    "HMA 2.0: rename a bank or change its matching ratio",
    request=HMA2_BANK_INPUT,
    request_required=False,
    responses={200: HMA2_BANK},
)
def update_bank(bank_name: str) -> Response:
    """Everything is checked before anything changes, so a refused rename changes nothing."""
    bank_or_404(bank_name, "Bank not found")
    banks = Banks(runtime().store)
    new_name = param("name")
    ratio = _ratio_from_request()
    if new_name is not None and new_name != bank_name:
        try:
            banks.rename_bank(bank_name, _checked_name(new_name))
        except IntegrityError:
            raise ApiError(403, "Bank name already exists") from None
        bank_name = new_name
    if ratio is not None:
        banks.update_bank(bank_name, matching_enabled_ratio=ratio)
    return jsonify(bank_view(bank_or_404(bank_name)))


@blueprint.delete("/c/bank/<bank_name>")
@compat_view("admin")
@operation(
    "HMA 2.0: delete a bank (200 whether or not it existed)",
    responses={200: obj(message=STR), **errors(409)},
)
def delete_bank(bank_name: str) -> Response:
    """200 whether or not the bank existed, as HMA 2.0 answers. A bank an exchange fills goes
    with its exchange (HMA 2.0 would leave the exchange behind, still holding credentials and
    fetching into nothing; Coop's main version deletes such banks through this route)."""
    bank = BankQueries(runtime().store).bank(bank_name)
    if bank is not None:
        if bank["exchange"]:
            exchanges_of(runtime()).delete(bank["exchange"], delete_bank=True)
        else:
            Banks(runtime().store).delete_bank(bank_name)
    return jsonify(message="Done")
