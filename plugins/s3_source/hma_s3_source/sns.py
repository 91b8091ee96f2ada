"""SNS message signatures, checked before anything an SNS message says is believed.

SNS signs a fixed list of the message's fields (which list depends on the message type) with
the key of a certificate it serves from its own hosts; the certificate's URL must therefore
match ``s3.sns_url_pattern`` (https SNS hosts by default) before it is fetched, and so must a
``SubscribeURL`` before it is visited. A signature never expires, so the signed ``Timestamp``
must also be within ``s3.sns_max_age_seconds`` of now: a captured message cannot be replayed
later. ``s3.sns_endpoint_url`` (tests only) fetches both from
another base URL: a test SNS server that signs with its own certificates.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import threading
from typing import Any
from urllib.parse import urlsplit

import requests

from hma_s3_source.s3_settings import S3Settings

SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_FIELDS["UnsubscribeConfirmation"] = SIGNED_FIELDS["SubscriptionConfirmation"]
MAX_CERTIFICATE_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 10
CACHED_CERTIFICATES = 64


class SnsRejected(Exception):
    """The message is not a genuine SNS message this deployment trusts."""


class SnsUnavailable(Exception):
    """SNS could not be reached to check or confirm the message: worth a retry."""


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The text SNS signed: ``name\\nvalue\\n`` for each signed field present, in order."""
    fields = SIGNED_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise SnsRejected(f"unknown SNS message type {message.get('Type')!r}")
    lines = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue  # only Subject is optional
            raise SnsRejected(f"the SNS message has no {name}")
        lines += [name, str(value)]
    return ("\n".join(lines) + "\n").encode("utf-8")


class SnsVerifier:
    """Verifies signatures with certificates fetched once per URL (cached, bounded)."""

    def __init__(self, s3: S3Settings) -> None:
        self._pattern = re.compile(s3.sns_url_pattern)
        self._endpoint = s3.sns_endpoint_url.rstrip("/")
        self._max_age = dt.timedelta(seconds=s3.sns_max_age_seconds)
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def verify(self, message: dict[str, Any]) -> None:
        """Return if ``message`` carries a valid SNS signature; raise ``SnsRejected`` if not."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        version = str(message.get("SignatureVersion", ""))
        algorithm = {"1": hashes.SHA1, "2": hashes.SHA256}.get(version)
        if algorithm is None:
            raise SnsRejected(f"unsupported SNS SignatureVersion {version!r}")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SnsRejected("the SNS signature is not base64") from exc
        data = string_to_sign(message)
        self._check_age(str(message["Timestamp"]))  # signed (string_to_sign requires it)
        key = self._public_key(str(message.get("SigningCertURL", "")))
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRejected("the SNS signing certificate does not hold an RSA key")
        try:
            key.verify(signature, data, padding.PKCS1v15(), algorithm())
        except InvalidSignature as exc:
            raise SnsRejected("the SNS signature does not match the message") from exc

    def _check_age(self, timestamp: str) -> None:
        """Refuse a message sent longer ago than the bound, or as far ahead (a wrong clock)."""
        try:
            sent = dt.datetime.fromisoformat(timestamp)
        except ValueError as exc:
            raise SnsRejected(f"the SNS Timestamp {timestamp!r} is not ISO 8601") from exc
        if sent.tzinfo is None:
            raise SnsRejected(f"the SNS Timestamp {timestamp!r} has no time zone")
        age = dt.datetime.now(dt.UTC) - sent
        if abs(age) > self._max_age:
            raise SnsRejected(
                f"the SNS message was sent at {timestamp}, more than "
                f"{int(self._max_age.total_seconds())} s from now: refused as a replay"
            )

    def confirm_subscription(self, message: dict[str, Any]) -> None:
        """Visit the (verified) message's SubscribeURL, which confirms the subscription."""
        answer = self._get(str(message.get("SubscribeURL", "")), "SubscribeURL")
        if not answer.ok:
            raise SnsRejected(f"confirming the subscription answered HTTP {answer.status_code}")

    def _public_key(self, url: str) -> Any:
        from cryptography import x509

        with self._lock:
            cached = self._keys.get(url)
        if cached is not None:
            return cached
        answer = self._get(url, "SigningCertURL")
        if not answer.ok or len(answer.content) > MAX_CERTIFICATE_BYTES:
            raise SnsRejected(f"the SNS signing certificate could not be fetched from {url}")
        try:
            key = x509.load_pem_x509_certificate(answer.content).public_key()
        except ValueError as exc:
            raise SnsRejected(f"{url} is not a PEM certificate") from exc
        with self._lock:
            if len(self._keys) >= CACHED_CERTIFICATES:
                self._keys.clear()
            self._keys[url] = key
        return key

    def _get(self, url: str, what: str) -> requests.Response:
        if not self._pattern.match(url):
            raise SnsRejected(f"the {what} {url!r} is not an SNS address this server trusts")
        if self._endpoint:
            parts = urlsplit(url)
            url = self._endpoint + parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            return requests.get(url, timeout=FETCH_TIMEOUT_SECONDS, allow_redirects=False)
        except requests.RequestException as exc:
            raise SnsUnavailable(f"fetching the {what} failed: {exc}") from exc
