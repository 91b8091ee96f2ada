"""``POST /sources/s3/events``: moto's SNS delivers signed bucket events over HTTP to the live
API; forged messages, wrong tokens and unsigned posts are refused; MinIO-style bearer posts and
the SubscriptionConfirmation handshake work.

Runs on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hma_s3_source.sns import string_to_sign
from s3_fixtures import Aws, SnsHost, with_s3
from sqlalchemy import func, select

from hma_framework.registry import Registry
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.tables import ContentRow
from hma_framework.testing import make_photo, run_jobs
from tests.test_actions_support import (
    Api,
    Receiver,
    bank_with,
    new_secret,
    quick_retries,
    registry_with_webhook,
    rule,
    webhook_handler,
)

TOKEN = "minio-events-token-123"


@pytest.fixture
def bucket(aws: Aws) -> str:
    return aws.new_bucket()


@pytest.fixture
def settings(settings: Settings, moto_url: str, bucket: str, sns_host: SnsHost) -> Settings:
    return with_s3(
        quick_retries(settings),
        moto_url,
        buckets=[{"bucket": bucket}],
        sns_endpoint_url=sns_host.url,
        events_token=TOKEN,
    )


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


@pytest.fixture
def receiver() -> Any:
    server = Receiver()
    yield server
    server.close()


def contents(runtime: Runtime) -> int:
    with runtime.store.reading() as session:
        return int(session.scalar(select(func.count()).select_from(ContentRow)) or 0)


def events_url(live_server: str) -> str:
    return live_server + "/sources/s3/events"


def test_a_jpeg_put_is_matched_and_acted_on_through_sns_http(
    live_server: str,
    runtime: Runtime,
    worker_runtime: Runtime,
    aws: Aws,
    bucket: str,
    receiver: Receiver,
) -> None:
    photo = make_photo(seed=21)
    path = runtime.settings.data_path / "p.jpg"
    path.write_bytes(photo)
    bank_with(runtime, "known-bad", signal=runtime.hashers["pdq"].hash_file(path).value)
    admin = Api(live_server, runtime.api_keys.create("ops", ["admin"]).token)
    secret = new_secret()
    webhook_handler(admin, "moderation", receiver.url + "/hooks", [secret])
    rule(admin, "known", "moderation", [{"label": "bank", "equals": "known-bad"}])
    topic = aws.new_topic()
    aws.sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=events_url(live_server))
    aws.notify(bucket, topic_arn=topic)  # S3 sends its signed test event at once
    aws.s3.put_object(Bucket=bucket, Key="up/a+b c.jpg", Body=photo)  # delivered synchronously
    aws.s3.put_object(Bucket=bucket, Key="up/a+b c.jpg", Body=photo)  # the same object again
    assert contents(runtime) == 1
    run_jobs(worker_runtime)
    row = runtime.content.get_row(1)
    assert row is not None and row.content_id == f"{bucket}/up/a+b c.jpg"
    assert row.status == "actioned", row.error
    [hook] = [r for r in receiver.received if r.path == "/hooks"]
    assert hook.verify(secret)["data"]["content_id"] == f"{bucket}/up/a+b c.jpg"


def genuine_message(aws: Aws, bucket: str, receiver: Receiver) -> dict[str, Any]:
    """A notification moto's SNS signed, caught by a plain HTTP subscriber."""
    topic = aws.new_topic()
    aws.sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=receiver.url + "/sns")
    aws.notify(bucket, topic_arn=topic)
    aws.s3.put_object(Bucket=bucket, Key="forged.jpg", Body=make_photo(seed=5))
    message: dict[str, Any] = receiver.received[-1].json()
    assert "Records" in message["Message"]
    return message


def test_forged_unsigned_and_wrongly_authenticated_posts_are_refused(
    live_server: str, runtime: Runtime, aws: Aws, bucket: str, receiver: Receiver
) -> None:
    genuine = genuine_message(aws, bucket, receiver)
    url = events_url(live_server)

    def post(body: Any, **headers: str) -> requests.Response:
        data = body if isinstance(body, str) else json.dumps(body)
        return requests.post(url, data=data, headers=headers, timeout=10)

    tampered = copy.deepcopy(genuine)
    tampered["Message"] = tampered["Message"].replace("forged.jpg", "other.jpg")
    assert post(tampered).status_code == 403
    elsewhere = dict(genuine, SigningCertURL="https://attacker.example/cert.pem")
    assert post(elsewhere).status_code == 403
    plain_http = dict(genuine, SigningCertURL=genuine["SigningCertURL"].replace("https", "http"))
    assert post(plain_http).status_code == 403
    unsigned = {k: v for k, v in genuine.items() if k != "Signature"}
    assert post(unsigned).status_code == 403
    assert post(json.loads(genuine["Message"])).status_code == 401  # raw event, no credential
    wrong = post(genuine["Message"], Authorization="Bearer not-the-token")
    assert wrong.status_code == 401 and "message" in wrong.json()
    assert contents(runtime) == 0
    # The untouched message passes, also with the Basic credentials SNS sends when the
    # subscription's URL carries them.
    accepted = post(genuine, Authorization="Basic dXNlcjpwYXNz")
    assert accepted.status_code == 200 and accepted.json()["recorded"] == 1


def test_minio_style_posts_with_the_bearer_token_are_recorded(
    live_server: str, runtime: Runtime, bucket: str
) -> None:
    event = {
        "EventName": "s3:ObjectCreated:Put",
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": "a%2Fb+c.png", "size": 10, "eTag": "e1"},
                },
            }
        ],
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = requests.post(events_url(live_server), json=event, headers=auth, timeout=10)
    assert answer.status_code == 200 and answer.json() == {
        "recorded": 1,
        "unchanged": 0,
        "skipped": 0,
    }
    row = runtime.content.get_row(1)
    assert row is not None and row.content_url == f"s3://{bucket}/a/b c.png"
    bad = requests.post(events_url(live_server), data="{", headers=auth, timeout=10)
    assert bad.status_code == 400 and "message" in bad.json()


def signed_confirmation(
    key: rsa.RSAPrivateKey, version: str, *, age: dt.timedelta = dt.timedelta(0)
) -> dict[str, Any]:
    """A confirmation signed by ``key``, sent ``age`` ago."""
    sent = dt.datetime.now(dt.UTC) - age
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m-1",
        "Token": "tok",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok",
        "Timestamp": sent.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "SignatureVersion": version,
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-t.pem",
    }
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def self_signed_pem(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("version", ["1", "2"])
def test_the_subscription_confirmation_handshake(
    live_server: str, sns_host: SnsHost, version: str
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sns_host.certificates["/SimpleNotificationService-t.pem"] = self_signed_pem(key)
    message = signed_confirmation(key, version)
    headers = {"x-amz-sns-message-type": "SubscriptionConfirmation"}
    answer = requests.post(
        events_url(live_server), data=json.dumps(message), headers=headers, timeout=10
    )
    assert answer.status_code == 200 and answer.json()["confirmed"] is True
    assert len(sns_host.confirmations) == 1 and "Token=tok" in sns_host.confirmations[0]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = signed_confirmation(other_key, version)
    refused = requests.post(
        events_url(live_server), data=json.dumps(forged), headers=headers, timeout=10
    )
    assert refused.status_code == 403 and len(sns_host.confirmations) == 1


def test_a_signed_message_older_than_the_bound_is_refused_as_a_replay(
    live_server: str, sns_host: SnsHost
) -> None:
    """A signature never expires: a captured message replayed hours later is refused, while
    one sent minutes ago (SNS retries) still passes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sns_host.certificates["/SimpleNotificationService-t.pem"] = self_signed_pem(key)
    headers = {"x-amz-sns-message-type": "SubscriptionConfirmation"}

    def post(message: dict[str, Any]) -> requests.Response:
        return requests.post(
            events_url(live_server), data=json.dumps(message), headers=headers, timeout=10
        )

    for age in (dt.timedelta(hours=2), -dt.timedelta(hours=2)):
        refused = post(signed_confirmation(key, "2", age=age))
        assert refused.status_code == 403 and "replay" in refused.json()["message"]
    assert sns_host.confirmations == []
    assert post(signed_confirmation(key, "2", age=dt.timedelta(minutes=10))).status_code == 200
    assert len(sns_host.confirmations) == 1
