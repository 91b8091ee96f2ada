"""EXIF-rotated photos are hashed, recorded and matched both ways: as displayed and as stored.

Reference tools (pdqhash, python-threatexchange, HMA 2.0) hash the stored pixels; phones and
browsers show the turned picture. Each test photo is made by turning an upright picture's
pixels and tagging the file with the orientation that turns them back, as a camera does; one
bank holds the reference hash of the stored pixels, another the hash of the picture as shown.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import attrs
import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageOps

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, make_photo, run_jobs
from hma_framework.types import HashResult

# Orientation tag -> how the camera stored an upright picture (the tag undoes it).
STORED_AS = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
PDQ_THRESHOLD = 31


def rotated_photo(orientation: int, seed: int = 5) -> bytes:
    upright = Image.open(io.BytesIO(make_photo(seed=seed)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    upright.transpose(STORED_AS[orientation]).save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def reference_pdq(image: Image.Image) -> str:
    """pdqhash (the C++ reference) on an image's RGB pixels, as HMA 2.0 hashes."""
    bits, _quality = pdqhash.compute(np.ascontiguousarray(np.asarray(image.convert("RGB"))))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def reference_hashes(photo: bytes) -> tuple[str, str]:
    """(stored pixels' hash ignoring EXIF, displayed picture's hash) by the reference."""
    with Image.open(io.BytesIO(photo)) as image:
        stored = reference_pdq(image)
        displayed = reference_pdq(ImageOps.exif_transpose(image))
    return stored, displayed


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def by_variant(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["variant"]: item for item in items}


def banks_of_both_readings(runtime: Runtime, photo: bytes, suffix: str = "") -> tuple[int, int]:
    """A bank with the stored pixels' reference hash, one with the displayed picture's."""
    stored, displayed = reference_hashes(photo)
    assert hamming(stored, displayed) > PDQ_THRESHOLD  # the two readings really differ
    banks = Banks(runtime.store)
    banks.create_bank(f"stored{suffix}")
    banks.create_bank(f"displayed{suffix}")
    stored_member = banks.add_member(f"stored{suffix}", NewMember(signals=(("pdq", stored),)))
    displayed_member = banks.add_member(
        f"displayed{suffix}", NewMember(signals=(("pdq", displayed),))
    )
    return stored_member, displayed_member


def test_post_lookup_shows_and_matches_both_readings(runtime: Runtime, client: Any) -> None:
    headers = Tokens.header(runtime.api_keys.create("reader", ["read"]).token)
    photos = {
        orientation: rotated_photo(orientation, seed=orientation) for orientation in STORED_AS
    }
    members = {
        orientation: banks_of_both_readings(runtime, photo, suffix=f"-{orientation}")
        for orientation, photo in photos.items()
    }
    for orientation, photo in photos.items():
        stored_member, displayed_member = members[orientation]
        response = client.post(
            "/lookup",
            json={"content_type": "photo", "content_bytes": b64(photo)},
            headers=headers,
        )
        body = response.get_json()
        assert response.status_code == 200, body
        signals = by_variant(body["signals"])
        assert set(signals) == {"displayed", "stored"}
        stored, displayed = reference_hashes(photo)
        assert hamming(signals["stored"]["signal_value"], stored) <= 2
        assert hamming(signals["displayed"]["signal_value"], displayed) <= 2
        assert all(s["signal_type"] == "pdq" and s["quality_ok"] for s in signals.values())
        matches = {(m["bank"], m["member_id"], m["variant"]) for m in body["matches"]}
        assert matches == {
            (f"stored-{orientation}", stored_member, "stored"),
            (f"displayed-{orientation}", displayed_member, "displayed"),
        }, orientation


def test_an_upright_photo_keeps_one_signal_without_a_variant(runtime: Runtime, client: Any) -> None:
    headers = Tokens.header(runtime.api_keys.create("reader", ["read"]).token)
    for photo in (make_photo(seed=3), _tagged(make_photo(seed=3), orientation=1)):
        body = client.post(
            "/lookup",
            json={"content_type": "photo", "content_bytes": base64.b64encode(photo).decode()},
            headers=headers,
        ).get_json()
        [signal] = body["signals"]
        assert "variant" not in signal


def _tagged(photo: bytes, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


@pytest.fixture
def submitter(runtime: Runtime, client: Any) -> Any:
    headers = Tokens.header(runtime.api_keys.create("platform", ["submit", "read"]).token)

    def call(method: str, path: str, body: Any = None) -> Any:
        response = getattr(client, method)(path, json=body, headers=headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    return call


def test_the_pipeline_records_both_signals_and_says_which_matched(
    runtime: Runtime, worker_runtime: Runtime, submitter: Any
) -> None:
    photo = rotated_photo(6)
    stored_member, displayed_member = banks_of_both_readings(runtime, photo)
    submitter(
        "post",
        "/submit/bytes/",
        {"content_id": "r-6", "content_type": "photo", "content_bytes": b64(photo)},
    )
    run_jobs(worker_runtime)

    record = submitter("get", "/content/r-6")
    assert record["status"] == "actioned", record
    signals = by_variant(record["signals"])
    assert set(signals) == {"displayed", "stored"}
    assert all(s["status"] == "ok" for s in signals.values())
    matches = submitter("get", "/content/r-6/matches")["matches"]
    assert {(m["bank"], m["member_id"], m["variant"]) for m in matches} == {
        ("stored", stored_member, "stored"),
        ("displayed", displayed_member, "displayed"),
    }
    assert by_variant(matches)["stored"]["content_signal"] == signals["stored"]["signal_value"]

    # Resubmitted upright (the tag gone): one reading replaces both, nothing stale is kept.
    upright = make_photo(seed=5)
    submitter(
        "post",
        "/submit/bytes/",
        {
            "content_id": "r-6",
            "content_type": "photo",
            "content_bytes": b64(upright),
            "force_resubmit": True,
        },
    )
    run_jobs(worker_runtime)
    record = submitter("get", "/content/r-6")
    [signal] = record["signals"]
    assert "variant" not in signal
    assert record["status"] == "actioned"  # the upright photo matches the displayed hash


def test_bank_members_from_a_rotated_photo_hold_the_displayed_hash(
    runtime: Runtime, client: Any
) -> None:
    headers = Tokens.header(runtime.api_keys.create("admin", ["admin"]).token)
    photo = rotated_photo(8)
    client.post("/banks", json={"name": "from-media"}, headers=headers)
    response = client.post(
        "/banks/from-media/members",
        json={"content_type": "photo", "content_bytes": b64(photo)},
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    member = response.get_json()
    _stored, displayed = reference_hashes(photo)
    [signal] = member["signals"]
    assert hamming(signal["signal_value"], displayed) <= 2


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_readings_must_be_told_apart_by_their_variant_names() -> None:
    stored = HashResult("00" * 32, variant="stored")
    assert HashResult("ff" * 32, variant="displayed", alternates=(stored,)).readings()[1] is stored
    for primary, alternate in [("", "stored"), ("stored", "stored"), ("displayed", "")]:
        with pytest.raises(ValueError, match="distinct variant names"):
            HashResult(
                "ff" * 32, variant=primary, alternates=(attrs.evolve(stored, variant=alternate),)
            )
    nested = HashResult(
        "00" * 32, variant="stored", alternates=(HashResult("11" * 32, variant="x"),)
    )
    with pytest.raises(ValueError, match="without alternates"):
        HashResult("ff" * 32, variant="displayed", alternates=(nested,))
    assert HashResult("ff" * 32).readings() == (HashResult("ff" * 32),)  # one reading, no name
