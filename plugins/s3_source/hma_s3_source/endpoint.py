"""``POST /sources/s3/events``: S3 event notifications over HTTP.

Two senders, each authenticated its own way (no API key, yet nothing unauthenticated gets
through): SNS HTTP(S) subscriptions, whose messages must carry a valid SNS signature (the
``SubscriptionConfirmation`` handshake is answered by visiting its verified SubscribeURL), and
MinIO-style webhooks sending ``Authorization: Bearer <HMA_S3_EVENTS_TOKEN>``. A failure to
record answers 503, so the sender delivers again; recording is idempotent per object version.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import attrs
from flask import Blueprint, Response, current_app, jsonify, request

from hma_framework.runtime import Runtime
from hma_framework.web.api_schema import BOOL, INT, OBJ, STR, errors, obj, operation
from hma_framework.web.auth import public
from hma_framework.web.errors import ApiError
from hma_s3_source.events import EventFormatError, ObjectCreated, parse_document, records_in
from hma_s3_source.intake import record_events
from hma_s3_source.s3_settings import S3Settings, s3_settings
from hma_s3_source.sns import SnsRejected, SnsUnavailable, SnsVerifier

log = logging.getLogger(__name__)

blueprint = Blueprint("s3_source", __name__)
_STATE_KEY = "hma_s3_source"


@attrs.frozen
class _State:
    s3: S3Settings
    verifier: SnsVerifier


def _state(runtime: Runtime) -> _State:
    """Settings and verifier, built once per app (the verifier caches certificates)."""
    state: _State | None = current_app.extensions.get(_STATE_KEY)
    if state is None:
        s3 = s3_settings(runtime.settings)
        state = _State(s3, SnsVerifier(s3))
        current_app.extensions[_STATE_KEY] = state
    return state


@blueprint.post("/sources/s3/events")
@public  # authenticated below: a bearer token or an SNS signature
@operation(
    "S3 event notifications (MinIO with the events token, or signed SNS messages)",
    request=OBJ,
    responses={
        200: {
            "anyOf": [
                obj(recorded=INT, unchanged=INT, skipped=INT),
                obj(confirmed=BOOL, topic_arn=STR),
                obj(ignored=STR),
            ]
        },
        **errors(401, 403),
    },
)
def receive_events() -> Response:
    runtime: Runtime = current_app.extensions["hma"]
    state = _state(runtime)
    header = request.headers.get("Authorization", "")
    # SNS may send Basic credentials of its endpoint URL: only a bearer token is MinIO's.
    if header.partition(" ")[0].lower() == "bearer":
        _check_token(state.s3, header)
        try:
            events = parse_document(request.get_data())
        except EventFormatError as exc:
            raise ApiError(400, f"not an S3 event notification: {exc}") from exc
        return _record(runtime, state.s3, events)
    message = _sns_message()
    try:
        state.verifier.verify(message)
    except SnsRejected as exc:
        log.warning("refused an SNS message: %s", exc)
        raise ApiError(403, f"refused: {exc}") from exc
    except SnsUnavailable as exc:
        raise ApiError(503, str(exc)) from exc
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        try:
            state.verifier.confirm_subscription(message)
        except (SnsRejected, SnsUnavailable) as exc:
            raise ApiError(503, f"could not confirm the subscription: {exc}") from exc
        log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))
        return jsonify(confirmed=True, topic_arn=message.get("TopicArn"))
    if kind != "Notification":
        return jsonify(ignored=kind)
    try:
        events = records_in(json.loads(message["Message"]))
    except (ValueError, EventFormatError) as exc:
        log.warning("an SNS notification that is not an S3 event: %s", exc)
        return jsonify(ignored="not an S3 event notification")  # SNS must not retry it
    return _record(runtime, state.s3, events)


def _check_token(s3: S3Settings, header: str) -> None:
    token = header.partition(" ")[2].strip()
    if not s3.events_token:
        raise ApiError(401, "bearer tokens are not accepted here: HMA_S3_EVENTS_TOKEN is not set")
    if not hmac.compare_digest(token.encode(), s3.events_token.encode()):
        raise ApiError(401, "invalid events token")


def _sns_message() -> dict[str, Any]:
    if not request.headers.get("x-amz-sns-message-type") and b'"Type"' not in request.get_data():
        raise ApiError(401, "send a signed SNS message or 'Authorization: Bearer <events token>'")
    try:
        message = json.loads(request.get_data())  # SNS sends JSON as text/plain
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the SNS message is not JSON: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("Type"), str):
        raise ApiError(400, "the SNS message has no Type")
    return message


def _record(runtime: Runtime, s3: S3Settings, events: list[ObjectCreated]) -> Response:
    try:
        tally = record_events(runtime, s3, events)
    except Exception as exc:
        log.exception("recording S3 events failed")
        raise ApiError(503, "the events could not be recorded now; deliver them again") from exc
    return jsonify(recorded=tally.recorded, unchanged=tally.unchanged, skipped=tally.skipped)
