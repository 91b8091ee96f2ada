"""``GET /metrics`` in Prometheus's text format, and the request series recorded per request.

Scrapers authenticate like any client (a key with the ``read`` scope, sent as a Bearer token,
which Prometheus's ``authorization`` setting does) or come from a network listed in
``HMA_WEB_METRICS_NETWORKS``, for scrapers on a private monitoring network.
"""

from __future__ import annotations

import ipaddress
import time

from flask import Blueprint, Flask, Response, current_app, g, request

from hma_framework import metrics
from hma_framework.runtime import Runtime
from hma_framework.web.api_schema import Media, operation
from hma_framework.web.auth import bearer_token, public
from hma_framework.web.errors import ApiError

blueprint = Blueprint("metrics", __name__)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


def _from_allowed_network(runtime: Runtime) -> bool:
    networks = runtime.settings.web.metrics_networks
    if not networks or not request.remote_addr:
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in networks)


@blueprint.get("/metrics")
@public  # checked here: a read key, or a request from an allowed network
@operation(
    "Prometheus metrics (a read key, or a request from web.metrics_networks)",
    responses={200: Media("text/plain", {"type": "string"})},
    own_scope="read",
)
def scrape() -> Response:
    runtime = _runtime()
    if not _from_allowed_network(runtime):
        token = bearer_token()
        if token is None:
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
        key = runtime.authenticate(token)
        if key is None:
            raise ApiError(401, "invalid or revoked API key")
        if not key.allows("read"):
            raise ApiError(403, "this API key lacks the 'read' scope")
    return Response(metrics.exposition(runtime), mimetype=metrics.CONTENT_TYPE)


def _start_timer() -> None:
    g.hma_started = time.perf_counter()


def _record(response: Response) -> Response:
    started = g.get("hma_started")
    if started is None:
        return response
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.observe_request(
        route, request.method, response.status_code, time.perf_counter() - started
    )
    if request.blueprint == "submit" and request.endpoint:
        path = request.endpoint.rsplit(".", 1)[-1]
        outcome = metrics.submission_outcome(response.status_code)
        metrics.SUBMISSIONS.labels(path, outcome).inc()
    return response


def install_request_metrics(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_record)
