"""HMA 2.0's type routes: ``/c/signal_type`` (list, ``PUT`` a ratio, ``/index`` status) and
``/c/content_type``. Signal types are the installed plugins; their ratio is stored (see
:mod:`hma_framework.store.signal_type_settings`) and, as in HMA 2.0, only reported.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select

from hma_framework.store.signal_type_settings import (
    DEFAULT_RATIO,
    enabled_ratios,
    set_enabled_ratio,
)
from hma_framework.store.tables import BankMemberRow, MemberSignalRow, SignalRow
from hma_framework.web.api_schema import BOOL, INT, NUM, STR, array, obj, operation, string_map
from hma_framework.web.compat_hma2.auth import compat_view
from hma_framework.web.compat_hma2.hashing import content_types, runtime
from hma_framework.web.compat_hma2.inputs import json_object, param
from hma_framework.web.errors import ApiError

blueprint = Blueprint("hma2_signal_types", __name__)


@blueprint.get("/c/signal_type")
@compat_view("read")
@operation("HMA 2.0: the signal types", responses={200: array(obj(name=STR, enabled_ratio=NUM))})
def signal_types() -> Response:
    rt = runtime()
    ratios = enabled_ratios(rt.store)
    return jsonify(
        [
            {"name": name, "enabled_ratio": ratios.get(name, DEFAULT_RATIO)}
            for name in sorted(rt.registry.signal_types)
        ]
    )


def _ratio(raw: Any) -> float:
    """HMA 2.0 parses the value with ``float()``; a bool is not a number here."""
    if raw is None:
        raise ApiError(400, "enabled_ratio is required")
    try:
        if isinstance(raw, bool):
            raise ValueError
        return float(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid float: '{raw}'") from None


@blueprint.put("/c/signal_type/<signal_type_name>")
@compat_view("admin")
@operation(
    "HMA 2.0: set a signal type's enabled ratio (stored and reported, as HMA 2.0 does)",
    request=obj(enabled_ratio=NUM),
    request_required=False,
    query={"enabled_ratio": NUM},
    responses={204: None},
)
def update_signal_type(signal_type_name: str) -> tuple[str, int]:
    """204 with no body, as HMA 2.0 answers. Its unknown-type and range errors are 500s
    there; here they are the 400s they should be, with its messages."""
    ratio = _ratio(json_object().get("enabled_ratio", param("enabled_ratio")))
    rt = runtime()
    if signal_type_name not in rt.registry.signal_types:
        raise ApiError(400, f"Unknown signal type {signal_type_name}")
    if not 0.0 <= ratio <= 1.0:
        raise ApiError(
            400, f"Invalid enabled ratio {ratio}. Must be in the range 0.0-1.0 inclusive."
        )
    set_enabled_ratio(rt.store, signal_type_name, ratio)
    return "", 204


def _db_counts() -> dict[str, tuple[int, int]]:
    """Per signal type: distinct hashes banked, and when the newest bank member came."""
    with runtime().store.reading() as session:
        rows = session.execute(
            select(
                SignalRow.signal_type,
                func.count(func.distinct(SignalRow.id)),
                func.max(BankMemberRow.created_at),
            )
            .join(MemberSignalRow, MemberSignalRow.signal_pk == SignalRow.id)
            .join(BankMemberRow, BankMemberRow.id == MemberSignalRow.member_pk)
            .group_by(SignalRow.signal_type)
        ).all()
    found: dict[str, tuple[int, int]] = {}
    for name, count, newest in rows:
        found[name] = (int(count), int(newest.timestamp()) if newest else -1)
    return found


@blueprint.get("/c/signal_type/index")
@compat_view("read")
@operation(
    "HMA 2.0: index build status per signal type",
    query={"signal_type": STR},
    responses={
        200: string_map(
            obj(
                db_size=INT,
                index_size=INT,
                index_out_of_date=BOOL,
                newest_db_item=INT,
                index_built_to=INT,
            )
        )
    },
)
def index_status() -> Response:
    """HMA 2.0's build status per type. The index applies the change log on every lookup,
    so after this refresh it is built to the newest item (never "out of date")."""
    rt = runtime()
    names = sorted(rt.registry.signal_types)
    wanted = param("signal_type")
    if wanted is not None:
        if wanted not in names:
            raise ApiError(400, f"No such signal type '{wanted}'")
        names = [wanted]
    rt.indexes.refresh()
    counts = _db_counts()
    answer: dict[str, dict[str, Any]] = {}
    for name in names:
        db_size, newest = counts.get(name, (0, -1))
        answer[name] = {
            "db_size": db_size,
            "index_size": rt.indexes.size(name) if rt.indexes.loaded else 0,
            "index_out_of_date": not rt.indexes.loaded,
            "newest_db_item": newest,
            "index_built_to": newest if rt.indexes.loaded else -1,
        }
    return jsonify(answer)


@blueprint.get("/c/content_type")
@compat_view("read")
@operation("HMA 2.0: the content types", responses={200: array(obj(name=STR, enabled=BOOL))})
def content_type_list() -> Response:
    return jsonify([{"name": name, "enabled": True} for name in content_types(runtime())])
