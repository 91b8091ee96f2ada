"""Uploaded media hashed several to an RQ job: the hash stage's waiting set.

Real HTTP, Redis, RQ workers, SQLite and PostgreSQL; corrupt uploads and lost jobs included.
"""

from __future__ import annotations

import attrs
from redis import Redis
from sqlalchemy import update

from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.pipeline.stages import HASH
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.store.tables import ContentRow, utcnow
from hma_framework.testing import make_photo, run_jobs
from tests.test_submit_api import Api, api, b64  # noqa: F401  (api is a fixture)


def submit_photos(api: Api, count: int, corrupt: int | None = None) -> list[str]:  # noqa: F811
    ids = []
    for i in range(count):
        media = b"not a picture" if i == corrupt else make_photo(seed=100 + i)
        body = {"content_id": f"up-{i}", "content_type": "photo", "content_bytes": b64(media)}
        response = api.post("/submit/bytes/", body)
        assert response.status_code == 200, response.text
        ids.append(f"up-{i}")
    return ids


def test_a_burst_of_uploads_waits_for_one_hash_job_and_each_is_hashed(
    api: Api,  # noqa: F811
    runtime: Runtime,
    worker_runtime: Runtime,
) -> None:
    ids = submit_photos(api, 7, corrupt=3)
    assert runtime.queues["hash"].count == 1, "seven uploads, one hash job waiting"
    run_jobs(worker_runtime)
    statuses = {cid: api.content(cid)["status"] for cid in ids}
    assert statuses == {cid: "failed" if cid == "up-3" else "no_match" for cid in ids}
    assert "hashing failed" in api.content("up-3")["error"]
    for cid in ids[:3]:
        [signal] = api.content(cid)["signals"]
        assert signal["signal_type"] == "pdq" and len(signal["signal_value"]) == 64
    assert not list((runtime.settings.data_path / "media").iterdir()), "media forgotten"


def test_reconcile_starts_a_hash_job_for_uploads_whose_job_was_lost(
    api: Api,  # noqa: F811
    runtime: Runtime,
    worker_runtime: Runtime,
) -> None:
    ids = submit_photos(api, 3)
    redis = Redis.from_url(runtime.settings.redis_url)
    waiting = redis.smembers(HASH.pending_key)
    assert len(waiting) == 3
    runtime.queues["hash"].empty()  # the job is lost; the set and the key naming it remain
    with runtime.store.transaction() as session:
        session.execute(update(ContentRow).values(updated_at=utcnow().replace(year=2000)))
    impatient = build_runtime(
        attrs.evolve(
            runtime.settings,
            pipeline=attrs.evolve(runtime.settings.pipeline, stuck_after_seconds=1),
        ),
        registry=runtime.registry,
    )
    try:
        assert reconcile_runtime(impatient)["requeued"] == 0, "waiting content is the job's"
        assert runtime.queues["hash"].count == 1, "a new hash job for the set"
        assert reconcile_runtime(impatient)["requeued"] == 0, "and only one"
        assert runtime.queues["hash"].count == 1
    finally:
        impatient.close()
    run_jobs(worker_runtime)
    assert {api.content(cid)["status"] for cid in ids} == {"no_match"}
