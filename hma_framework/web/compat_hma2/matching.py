"""HMA 2.0's matcher: ``/m/raw_lookup``, ``/m/lookup``, ``/m/compare``, ``/m/index/status``.

Every lookup goes through this project's index manager, so it sees the same index,
thresholds and kill switches as ``/lookup``; only the answer's shape is HMA 2.0's. Its
content ids are bank member ids. Unlike HMA 2.0, ``raw_lookup`` also honours kill switches:
a switched-off member is not a match anywhere.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from hma_framework.index.manager import BankMatch
from hma_framework.index.sampling import coin_flip, sampled_banks
from hma_framework.json_input import JsonInputError, parse_json
from hma_framework.registry import InvalidSignalError
from hma_framework.store.bank_queries import BankQueries
from hma_framework.web.api_schema import (
    ANY,
    BOOL,
    INT,
    OBJ,
    STR,
    Media,
    array,
    errors,
    obj,
    operation,
    string_map,
)
from hma_framework.web.compat_hma2.auth import compat_view
from hma_framework.web.compat_hma2.hashing import hash_upload, hash_url_content, runtime
from hma_framework.web.compat_hma2.inputs import multipart_parts, param, to_bool
from hma_framework.web.errors import ApiError

blueprint = Blueprint("hma2_matching", __name__)


def _banks_param() -> set[str] | None:
    raw = param("banks")
    return {name for name in str(raw).split(",") if name} if raw else None


def _matches(signal: str, signal_type: str, banks: set[str] | None = None) -> list[BankMatch]:
    rt = runtime()
    if signal_type not in rt.registry.signal_types:
        raise ApiError(400, f"No such SignalType '{signal_type}'")
    try:
        value = rt.registry.normalize_signal(signal_type, signal)
    except InvalidSignalError as exc:
        raise ApiError(400, f"invalid signal: {exc}") from exc
    return rt.indexes.match(signal_type, value, banks=banks)


def _required(name: str) -> str:
    value = param(name)
    if not value:
        raise ApiError(400, f"{name} is required")
    return str(value)


HIT = obj(bank_content_id=INT, distance=STR)
BY_BANK = string_map(array(HIT))


@blueprint.get("/m/raw_lookup")
@compat_view("read")
@operation(
    "HMA 2.0: the member ids matching a hash, whatever the banks' ratios",
    query={"signal": STR, "signal_type": STR, "banks": STR, "include_distance": STR},
    responses={200: obj(matches={"anyOf": [array(INT), array(HIT)]})},
)
def raw_lookup() -> Response:
    signal, signal_type = _required("signal"), _required("signal_type")
    include_distance = to_bool(param("include_distance") or "false", "include_distance")
    found: dict[int, int] = {}
    for match in _matches(signal, signal_type, _banks_param()):
        found.setdefault(match.member_pk, match.distance)
    if include_distance:
        return jsonify(
            matches=[{"bank_content_id": pk, "distance": str(d)} for pk, d in found.items()]
        )
    return jsonify(matches=list(found))


def _by_bank(
    signal: str, signal_type: str, banks: set[str] | None, bypass_coinflip: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """``{bank: [{bank_content_id, distance}]}`` for the banks this lookup's coin flip lets in."""
    matches = _matches(signal, signal_type, banks)
    ratios = BankQueries(runtime().store).matching_ratios([m.bank_name for m in matches])
    flip = 0.0 if bypass_coinflip else coin_flip(request.args.get("seed"))
    answering = sampled_banks(ratios, flip)
    result: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, int]] = set()
    for match in matches:
        if match.bank_name not in answering or (match.bank_name, match.member_pk) in seen:
            continue
        seen.add((match.bank_name, match.member_pk))
        result.setdefault(match.bank_name, []).append(
            {"bank_content_id": match.member_pk, "distance": str(match.distance)}
        )
    return result


@blueprint.get("/m/lookup")
@compat_view("read")
@operation(
    "HMA 2.0: matches by bank for a hash, or per signal type for the media at a URL",
    query={
        "signal": STR,
        "signal_type": STR,
        "url": STR,
        "content_type": STR,
        "types": STR,
        "banks": STR,
        "seed": STR,
    },
    responses={200: {"anyOf": [BY_BANK, string_map(BY_BANK)]}, **errors(502)},
)
def lookup_get() -> Response:
    """By signal: flat ``{bank: [...]}``. By URL: ``{signal_type: {bank: [...]}}``, or flat
    for the one ``signal_type`` when that is given too."""
    banks = _banks_param()
    url = param("url")
    signal_type = param("signal_type")
    if not url:
        signal = param("signal")
        if not signal or not signal_type:
            raise ApiError(400, "Either url or both signal and signal_type are required")
        return jsonify(_by_bank(str(signal), str(signal_type), banks))
    hashes = hash_url_content(str(url), param("content_type"), param("types"))
    nested = {st: _by_bank(value, st, banks) for st, value in hashes.items()}
    if signal_type:
        return jsonify(nested.get(str(signal_type), {}))
    return jsonify(nested)


@blueprint.post("/m/lookup")
@compat_view("read")
@operation(
    "HMA 2.0: matches per signal type for an upload",
    query={"bypass_coinflip": STR, "banks": STR, "seed": STR, "types": STR},
    request=Media("multipart/form-data", OBJ),
    responses={200: string_map(BY_BANK)},
)
def lookup_post() -> Response:
    hashes = hash_upload(multipart_parts())
    bypass = request.args.get("bypass_coinflip", "false") == "true"
    banks = _banks_param()
    return jsonify({st: _by_bank(value, st, banks, bypass) for st, value in hashes.items()})


@blueprint.post("/m/compare")
@compat_view("read")
@operation(
    "HMA 2.0: compare pairs of hashes, {signal_type: [a, b]}",
    request=string_map(array(STR)),
    responses={200: string_map(array(ANY))},
)
def compare() -> Response:
    """``{signal_type: [hash_a, hash_b]}`` -> ``{signal_type: [matched, {"distance": d}]}``."""
    rt = runtime()
    try:
        body = parse_json(request.get_data(cache=True))
    except JsonInputError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "Request input was not a dict")
    results: dict[str, Any] = {}
    for signal_type, pair in body.items():
        if not isinstance(pair, list):
            raise ApiError(400, f"Comparison hashes for {signal_type} was not a list")
        if len(pair) != 2:
            raise ApiError(400, "Comparison hash list length must be exactly 2")
        record = rt.registry.signal_types.get(signal_type)
        if record is None:
            raise ApiError(400, f"No such SignalType '{signal_type}'")
        compare_hash = getattr(record.signal_type, "compare_hash", None)
        if compare_hash is None:
            raise ApiError(400, f"{signal_type} does not support hash comparison")
        try:
            left, right = (rt.registry.normalize_signal(signal_type, str(v)) for v in pair)
        except InvalidSignalError as exc:
            raise ApiError(400, f"Invalid {signal_type} hash: {exc}") from exc
        comparison = compare_hash(left, right)
        distance = getattr(comparison.distance, "distance", None)
        matched = bool(comparison.match)
        if isinstance(distance, int):
            matched = distance <= record.default_threshold
        results[signal_type] = [matched, {"distance": distance}]
    return jsonify(results)


@blueprint.get("/m/index/status")
@compat_view("read")
@operation(
    "HMA 2.0: the index state per signal type",
    query={"signal_type": STR},
    responses={200: string_map(obj(present=BOOL, built_to=INT, size=INT))},
)
def index_status() -> Response:
    rt = runtime()
    names = sorted(rt.registry.signal_types)
    wanted = request.args.get("signal_type")
    if wanted is not None:
        if wanted not in names:
            raise ApiError(400, f"No such signal type '{wanted}'")
        names = [wanted]
    rt.indexes.refresh()
    built_to = int(rt.indexes.refreshed_at) if rt.indexes.loaded else -1
    return jsonify(
        {
            name: {
                "present": rt.indexes.loaded,
                "built_to": built_to,
                "size": rt.indexes.size(name),
            }
            for name in names
        }
    )
