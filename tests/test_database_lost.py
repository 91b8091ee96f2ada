"""The database unreachable: the API answers 503 with a retry hint, never a 500."""

from __future__ import annotations

from pathlib import Path

from hma_framework.runtime import build_runtime
from hma_framework.settings import Settings
from hma_framework.web.app import create_app


def test_requests_while_the_database_is_down_are_503_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=str(tmp_path),
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2",
        redis_url="redis://127.0.0.1:1/0",
    )
    runtime = build_runtime(settings)
    try:
        client = create_app(runtime).test_client()
        response = client.get("/plugins", headers={"Authorization": "Bearer hma_0123456789ab_x"})
        assert response.status_code == 503, response.get_json()
        assert int(response.headers["Retry-After"]) > 0
        assert "127.0.0.1" not in response.get_json()["message"]
        ready = client.get("/status/ready")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["database"] is False
        assert "127.0.0.1" not in ready.get_data(as_text=True)
    finally:
        runtime.close()
