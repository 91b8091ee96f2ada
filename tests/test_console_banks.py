"""The console's Banks, Lookup-compare and Overview forms, through Flask's test client.

Each form is checked on SQLite and PostgreSQL for what it writes, what it refuses (bad input,
a read-only key, a missing CSRF token) and that it reuses the API's own validation.
"""

from __future__ import annotations

import io
import json
from typing import Any

from hma_framework.media_hashing import bytes_file, compute_signals
from hma_framework.runtime import Runtime
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, make_photo, run_jobs
from tests.http_fixtures import loopback_server, serve_bytes
from tests.test_console import OTHER_PDQ, PDQ, page_token, sign_in
from tests.test_console_tallies import submit_hash


def pdq(n: int) -> str:
    return f"{n:064x}"


def test_bank_settings_edit_tags_and_thresholds_with_the_apis_checks(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("b1", tags=["old"])
    sign_in(client, tokens.admin)
    page = client.get("/ui/banks/b1")
    assert 'id="bank-settings"' in page.text and 'for="threshold_pdq"' in page.text
    token = page_token(client, "/ui/banks/b1")
    saved = client.post(
        "/ui/banks/b1/settings",
        data={
            "csrf_token": token,
            "description": "known bad",
            "tags": "csam, urgent ,",
            "threshold_pdq": "20",
        },
    )
    assert saved.status_code == 303
    bank = BankQueries(runtime.store).bank("b1")
    assert bank is not None
    assert bank["tags"] == ["csam", "urgent"] and bank["thresholds"] == {"pdq": 20}
    assert bank["description"] == "known bad"
    limit = runtime.registry.signal_types["pdq"].threshold_limit
    too_far = client.post(
        "/ui/banks/b1/settings",
        data={"csrf_token": token, "tags": "x", "threshold_pdq": str(limit + 1)},
    )
    assert too_far.status_code == 400 and f"from 0 to {limit}" in too_far.text
    not_number = client.post(
        "/ui/banks/b1/settings", data={"csrf_token": token, "threshold_pdq": "ten"}
    )
    assert not_number.status_code == 400 and "must be a number" in not_number.text
    assert BankQueries(runtime.store).bank("b1")["thresholds"] == {"pdq": 20}  # type: ignore[index]
    cleared = client.post("/ui/banks/b1/settings", data={"csrf_token": token, "tags": ""})
    assert cleared.status_code == 303
    assert BankQueries(runtime.store).bank("b1")["thresholds"] == {}  # type: ignore[index]
    forged = client.post("/ui/banks/b1/settings", data={"tags": "forged"})
    assert forged.status_code == 403
    assert client.post("/ui/banks/nope/settings", data={"csrf_token": token}).status_code == 404


def test_read_keys_cannot_change_import_or_add_but_can_export(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("b1")
    sign_in(client, tokens.read)
    page = client.get("/ui/banks/b1")
    assert 'id="bank-settings"' not in page.text and 'id="bank-import"' not in page.text
    token = page_token(client, "/ui/banks/b1")
    for path, data in (
        ("/ui/banks/b1/settings", {"tags": "x"}),
        ("/ui/banks/b1/import", {}),
        ("/ui/banks/b1/members", {"content_url": "http://example.org/x.jpg"}),
    ):
        refused = client.post(path, data={"csrf_token": token, **data})
        assert refused.status_code == 403 and "admin" in refused.text, path
    assert BankQueries(runtime.store).bank("b1")["tags"] == []  # type: ignore[index]
    assert client.get("/ui/banks/b1/export?format=csv").status_code == 200


def test_add_a_member_by_url_through_the_guarded_fetch(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    photo = make_photo(seed=11)
    with bytes_file(runtime, photo) as path:
        (signal,) = compute_signals(runtime, "photo", path, alternates=False)
    Banks(runtime.store).create_bank("b1")
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/banks/b1")
    with loopback_server() as server:
        url = server.add("/p.jpg", serve_bytes(photo, content_type="image/jpeg"))
        added = client.post(
            "/ui/banks/b1/members",
            data={"csrf_token": token, "content_url": url, "tags": "fetched"},
        )
        assert added.status_code == 303, added.text
        gone = client.post(
            "/ui/banks/b1/members",
            data={"csrf_token": token, "content_url": server.url("/gone.jpg")},
        )
        assert gone.status_code in (400, 502) and "Not added" in gone.text
    (member,) = BankQueries(runtime.store).members("b1")
    assert member["tags"] == ["fetched"]
    assert member["signals"] == [{"signal_type": "pdq", "signal_value": signal.value}]
    private = client.post(
        "/ui/banks/b1/members", data={"csrf_token": token, "content_url": "http://10.1.2.3/x"}
    )
    assert private.status_code == 400 and "Not added" in private.text
    secret = client.post(
        "/ui/banks/b1/members",
        data={"csrf_token": token, "content_url": "http://u:pw@example.org/x"},
    )
    assert secret.status_code == 400 and "pw@" not in secret.text
    assert len(BankQueries(runtime.store).members("b1")) == 1
    assert BankQueries(runtime.store).bank("b1")["member_count"] == 1  # type: ignore[index]


def _upload(text: str, name: str) -> tuple[io.BytesIO, str]:
    return io.BytesIO(text.encode()), name


def test_import_and_export_round_trip_through_bank_io(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("b1")
    Banks(runtime.store).create_bank("b2")
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/banks/b1")
    ndjson = "\n".join(
        [
            json.dumps({"signal_type": "pdq", "signal_value": pdq(1), "tags": ["a", "b"]}),
            json.dumps({"signal_type": "pdq", "signal_value": "nothex"}),
            json.dumps({"signal_type": "pdq", "signal_value": pdq(2), "notes": "n2"}),
        ]
    )
    strict = client.post(
        "/ui/banks/b1/import",
        data={"csrf_token": token, "file": _upload(ndjson, "m.ndjson"), "strict": "on"},
        content_type="multipart/form-data",
    )
    assert strict.status_code == 400 and "nothing was imported" in strict.text
    assert "line 2:" in strict.text
    assert BankQueries(runtime.store).members("b1") == []
    loose = client.post(
        "/ui/banks/b1/import",
        data={"csrf_token": token, "file": _upload(ndjson, "m.ndjson")},
        content_type="multipart/form-data",
    )
    assert loose.status_code == 200 and "Imported 2 members (ndjson); 1 lines skipped" in loose.text
    assert BankQueries(runtime.store).bank("b1")["member_count"] == 2  # type: ignore[index]
    exported = client.get("/ui/banks/b1/export?format=csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert 'filename="b1.csv"' in exported.headers["Content-Disposition"]
    lines = exported.text.splitlines()
    assert lines[0] == "signal_type,signal_value,tags,notes,content_id"
    assert lines[1:] == [f"pdq,{pdq(1)},a;b,,", f"pdq,{pdq(2)},,n2,"]
    again = client.post(  # the CSV export imports into another bank unchanged
        "/ui/banks/b2/import",
        data={"csrf_token": token, "file": _upload(exported.text, "b1.csv")},
        content_type="multipart/form-data",
    )
    assert "Imported 2 members (csv); 0 lines skipped" in again.text
    as_ndjson = client.get("/ui/banks/b2/export?format=ndjson")
    rows = [json.loads(line) for line in as_ndjson.text.splitlines()]
    assert [(r["signal_value"], r["tags"], r["notes"]) for r in rows] == [
        (pdq(1), ["a", "b"], ""),
        (pdq(2), [], "n2"),
    ]
    assert client.get("/ui/banks/b1/export?format=xml").status_code == 400
    missing = client.post("/ui/banks/b1/import", data={"csrf_token": token})
    assert missing.status_code == 400 and "choose a CSV or NDJSON file" in missing.text
    forged = client.post(
        "/ui/banks/b1/import",
        data={"file": _upload(ndjson, "m.ndjson")},
        content_type="multipart/form-data",
    )
    assert forged.status_code == 403
    assert BankQueries(runtime.store).bank("b1")["member_count"] == 2  # type: ignore[index]


def test_member_search_by_id_tag_and_hash_pages_by_keyset(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("b1")
    ids = banks.add_members(
        "b1",
        [
            NewMember(signals=(("pdq", pdq(n)),), tags=("even",) if n % 2 == 0 else ())
            for n in range(1, 131)
        ],
    )
    sign_in(client, tokens.read)
    first = client.get("/ui/banks/b1")
    assert first.text.count('<td class="num">') == 50 and "130 members" in first.text
    assert f"after={ids[49]}" in first.text
    second = client.get(f"/ui/banks/b1?after={ids[49]}")
    assert f'<td class="num">{ids[50]}</td>' in second.text and "First page" in second.text
    tagged = client.get("/ui/banks/b1?q=tag:even")
    assert tagged.text.count('<td class="num">') == 50
    assert f'<td class="num">{ids[1]}</td>' in tagged.text  # n=2
    assert f'<td class="num">{ids[0]}</td>' not in tagged.text  # n=1 is not tagged
    cursor = tagged.text.split("after=")[1].split('"')[0]
    rest = client.get(f"/ui/banks/b1?q=tag:even&after={cursor}")
    assert rest.text.count('<td class="num">') == 15 and "Next page" not in rest.text
    by_hash = client.get(f"/ui/banks/b1?q={pdq(7)}")
    assert by_hash.text.count('<td class="num">') == 1 and f">{ids[6]}<" in by_hash.text
    by_id = client.get(f"/ui/banks/b1?q={ids[9]}")
    assert by_id.text.count('<td class="num">') == 1 and pdq(10) in by_id.text
    nothing = client.get("/ui/banks/b1?q=tag:absent")
    assert "No members match" in nothing.text


def test_compare_two_hashes_and_two_images_side_by_side(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    sign_in(client, tokens.read)
    token = page_token(client, "/ui/lookup")
    assert 'for="compare_signal_a"' in client.get("/ui/lookup").text
    hashes = client.post(
        "/ui/lookup/compare",
        data={"csrf_token": token, "signal_type": "pdq", "signal_a": PDQ, "signal_b": PDQ},
    )
    assert hashes.status_code == 200 and 'data-signal-type="pdq"' in hashes.text
    row = hashes.text.split('class="compared"')[1]
    assert '<td class="num">0</td><td>yes</td>' in row
    far = client.post(
        "/ui/lookup/compare",
        data={"csrf_token": token, "signal_type": "pdq", "signal_a": PDQ, "signal_b": OTHER_PDQ},
    )
    assert '<td class="num">256</td><td>no</td>' in far.text
    photo = make_photo(seed=5)
    with bytes_file(runtime, photo) as path:
        (signal,) = compute_signals(runtime, "photo", path, alternates=False)
    images = client.post(
        "/ui/lookup/compare",
        data={
            "csrf_token": token,
            "file_a": (io.BytesIO(photo), "a.jpg"),
            "file_b": (io.BytesIO(photo), "b.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert images.status_code == 200 and "<img" not in images.text
    assert signal.value in images.text and '<td class="num">0</td><td>yes</td>' in images.text
    mixed = client.post(  # an image against a hash of the same type
        "/ui/lookup/compare",
        data={
            "csrf_token": token,
            "signal_type": "pdq",
            "file_a": (io.BytesIO(photo), "a.jpg"),
            "signal_b": signal.value,
        },
        content_type="multipart/form-data",
    )
    assert '<td class="num">0</td><td>yes</td>' in mixed.text
    bad = client.post(
        "/ui/lookup/compare",
        data={"csrf_token": token, "signal_type": "pdq", "signal_a": PDQ, "signal_b": "zz"},
    )
    assert bad.status_code == 400 and "Cannot compare" in bad.text
    one_sided = client.post(
        "/ui/lookup/compare", data={"csrf_token": token, "signal_type": "pdq", "signal_a": PDQ}
    )
    assert one_sided.status_code == 400 and "give side B" in one_sided.text
    forged = client.post(
        "/ui/lookup/compare", data={"signal_type": "pdq", "signal_a": PDQ, "signal_b": PDQ}
    )
    assert forged.status_code == 403


def test_the_api_compare_still_answers_through_the_shared_service(
    client: Any, tokens: Tokens
) -> None:
    answer = client.post(
        "/compare",
        json={"signal_type": "pdq", "signal_a": PDQ, "signal_b": OTHER_PDQ, "threshold": 31},
        headers=Tokens.header(tokens.read),
    )
    assert answer.json == {"signal_type": "pdq", "match": False, "distance": 256}
    bad = client.post(
        "/compare",
        json={"signal_type": "pdq", "signal_a": PDQ, "signal_b": PDQ, "threshold": 999},
        headers=Tokens.header(tokens.read),
    )
    assert bad.status_code == 400 and "threshold must be from 0" in bad.json["message"]


def test_overview_charts_rates_freshness_and_failures(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("watch")
    banks.add_member("watch", NewMember(signals=(("pdq", PDQ),)))
    for n, signal in enumerate((PDQ, PDQ, OTHER_PDQ, OTHER_PDQ)):
        submit_hash(client, tokens, f"c-{n}", signal)
    run_jobs(runtime)
    sign_in(client, tokens.read)
    overview = client.get("/ui/")
    text = overview.text
    assert overview.status_code == 200 and "<script" not in text
    assert 'data-count="submissions-day">4<' in text
    assert 'data-count="live-matches-day">2<' in text
    assert 'data-count="retroactive-matches-30 days">0<' in text
    # 24 hourly and 30 daily bars per series; this hour's bar holds the four submissions.
    hourly = text.split('data-chart="submissions-day"')[1].split("</figure>")[0]
    assert hourly.count("<rect") == 24 and hourly.count('data-count="4"') == 1
    daily = text.split('data-chart="submissions-30 days"')[1].split("</figure>")[0]
    assert daily.count("<rect") == 30
    rate = text.split('class="bank-rate" data-bank="watch"')[1].split("</tr>")[0]
    assert rate.count("50.00") == 2  # 2 matches per 4 submissions, both windows
    assert 'id="index-freshness"' in text and 'data-index="latest-seq"' in text
    assert 'data-queue="' in text


def test_a_rare_tag_is_searched_a_bounded_window_at_a_time(runtime: Runtime) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("b1")
    ids = banks.add_members(
        "b1",
        [
            NewMember(signals=(("pdq", pdq(n)),), tags=("rare",) if n in (4, 24) else ())
            for n in range(30)
        ],
    )
    queries = BankQueries(runtime.store)
    seen: list[int] = []
    cursors: list[int | None] = []
    after = None
    while True:
        found, after = queries.tagged_members("b1", "rare", after_id=after, limit=50, window=10)
        seen += [member["id"] for member in found]
        cursors.append(after)
        if after is None:
            break
    assert seen == [ids[4], ids[24]]
    assert cursors == [ids[9], ids[19], ids[29], None]  # every window ends a page
    full, cursor = queries.tagged_members("b1", "rare", after_id=None, limit=1, window=10)
    assert [m["id"] for m in full] == [ids[4]] and cursor == ids[4]
