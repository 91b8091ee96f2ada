"""A past match outlives its bank member and its bank (issues 9 and 10: nothing lost).

Content c-1 matches a member of FILES (a real local-file exchange's bank, fetched by a real
worker) and a member of ``local``. The exchange then withdraws its record (the next fetch
removes the member), an admin deletes the other member, or the whole bank: the matches, and
the write-backs already sent about them, must still be answered, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from hma_framework.exchanges import fetching
from hma_framework.runtime import Runtime
from hma_framework.testing import Tokens, run_jobs
from tests.test_actions_support import PDQ
from tests.test_console import sign_in
from tests.test_console_review import two_matches  # noqa: F401  (a fixture)
from tests.test_console_tallies import assert_tallies_match

WITHDRAWN = "the matched member was removed from its bank"


def _content_matches(client: Any, tokens: Tokens) -> list[dict[str, Any]]:
    answer = client.get("/content/c-1/matches", headers=Tokens.header(tokens.read))
    assert answer.status_code == 200, answer.text
    return list(answer.json["matches"])


def _matches_by_bank(client: Any, tokens: Tokens) -> dict[str | None, dict[str, Any]]:
    return {m["bank"]: m for m in _content_matches(client, tokens)}


def _match(client: Any, tokens: Tokens, match_id: int) -> dict[str, Any]:
    answer = client.get(f"/matches/{match_id}", headers=Tokens.header(tokens.read))
    assert answer.status_code == 200, answer.text
    return dict(answer.json)


def _opinion(client: Any, tokens: Tokens, match_id: int, opinion: str) -> Any:
    return client.post(
        f"/matches/{match_id}/opinion",
        json={"opinion": opinion},
        headers=Tokens.header(tokens.submit),
    )


def test_match_outlives_a_member_the_exchange_withdrew(
    client: Any,
    runtime: Runtime,
    worker_runtime: Runtime,
    tokens: Tokens,
    two_matches: Any,  # noqa: F811
) -> None:
    before = _matches_by_bank(client, tokens)["FILES"]
    assert before["member_id"] is not None and before["member_removed"] is False
    told = _opinion(client, tokens, before["id"], "true_positive")
    assert told.status_code == 202, told.text
    run_jobs(worker_runtime, ["action"])

    (two_matches / "list.txt").write_text("")  # the exchange withdraws its only record
    fetching.trigger_by_name(runtime, "files")
    run_jobs(worker_runtime, ["fetch"])
    gone = client.get("/banks/FILES/members", headers=Tokens.header(tokens.read))
    assert gone.status_code == 200 and gone.json["members"] == [], gone.text

    after = _matches_by_bank(client, tokens)["FILES"]
    assert after["id"] == before["id"]
    assert after["member_id"] is None and after["member_removed"] is True
    assert {k: after[k] for k in ("member_signal", "content_signal", "distance", "matched_at")} == {
        k: before[k] for k in ("member_signal", "content_signal", "distance", "matched_at")
    }
    shown = _match(client, tokens, before["id"])
    assert shown["bank"] == "FILES" and shown["member_removed"] is True
    assert shown["member_signal"] == PDQ
    assert [(w["opinion"], w["status"]) for w in shown["write_backs"]] == [
        ("true_positive", "sent")
    ]
    refused = _opinion(client, tokens, before["id"], "true_positive")
    assert refused.status_code == 409 and WITHDRAWN in refused.json["message"]

    sign_in(client, tokens.read)
    page = client.get("/ui/matches")
    assert page.status_code == 200
    assert f'id="match-{before["id"]}"' in page.text and "member removed" in page.text
    assert client.get("/ui/content?content_id=c-1").status_code == 200
    assert_tallies_match(runtime)


def test_match_outlives_a_deleted_member_and_a_deleted_bank(
    client: Any,
    runtime: Runtime,
    tokens: Tokens,
    two_matches: Any,  # noqa: F811
) -> None:
    admin = Tokens.header(tokens.admin)
    before = _matches_by_bank(client, tokens)
    local, files = before["local"], before["FILES"]

    deleted = client.delete(f"/banks/local/members/{local['member_id']}", headers=admin)
    assert deleted.status_code == 204, deleted.text
    shown = _match(client, tokens, local["id"])
    assert shown["bank"] == "local" and shown["member_removed"] is True
    assert shown["member_signal"] == local["member_signal"]

    assert client.delete("/banks/FILES?force=true", headers=admin).status_code == 204
    assert client.delete("/banks/local", headers=admin).status_code == 204
    after = {m["id"]: m for m in _content_matches(client, tokens)}
    assert set(after) == {local["id"], files["id"]}
    for match in (local, files):
        kept = after[match["id"]]
        assert kept["bank"] is None and kept["member_id"] is None and kept["member_removed"]
        assert kept["member_signal"] == match["member_signal"]
        assert kept["distance"] == match["distance"]
        assert _match(client, tokens, match["id"])["content_id"] == "c-1"
        refused = _opinion(client, tokens, match["id"], "seen")
        assert refused.status_code == 409 and WITHDRAWN in refused.json["message"]
    listed = client.get("/matches", headers=Tokens.header(tokens.read))
    assert {m["id"] for m in listed.json["matches"]} >= {local["id"], files["id"]}
    stats = client.get("/stats", headers=Tokens.header(tokens.read))
    assert stats.status_code == 200, stats.text

    sign_in(client, tokens.read)
    page = client.get("/ui/matches")
    assert page.status_code == 200 and page.text.count("deleted bank") == 2
    assert client.get("/ui/content?content_id=c-1").status_code == 200
    assert_tallies_match(runtime)
