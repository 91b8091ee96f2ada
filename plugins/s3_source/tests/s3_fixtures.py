"""Helpers of the S3 plugin's tests: boto3 set up as a user sets up AWS, settings pointed at
moto, and a stand-in for the SNS host that serves signing certificates."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import boto3
import requests

from hma_framework.settings import Settings

REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
#: moto's server picks the service from the request's credential scope.
_SNS_SCOPE = {"Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/sns/aws4"}


@attrs.frozen
class Aws:
    """boto3 clients on the moto server, and the setup steps a user would do on AWS."""

    url: str

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION)

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    @property
    def sns(self) -> Any:
        return self.client("sns")

    def new_bucket(self) -> str:
        name = f"bucket-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=name)
        return name

    def new_queue(self, visibility_timeout: int = 30) -> tuple[str, str]:
        """A queue's URL and ARN."""
        url = self.sqs.create_queue(
            QueueName=f"queue-{uuid.uuid4().hex[:12]}",
            Attributes={"VisibilityTimeout": str(visibility_timeout)},
        )["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def new_topic(self) -> str:
        return str(self.sns.create_topic(Name=f"topic-{uuid.uuid4().hex[:12]}")["TopicArn"])

    def notify(self, bucket: str, *, queue_arn: str = "", topic_arn: str = "") -> None:
        """Bucket -> queue or topic notifications for every ObjectCreated event."""
        config: dict[str, Any] = {}
        events = ["s3:ObjectCreated:*"]
        if queue_arn:
            config["QueueConfigurations"] = [{"QueueArn": queue_arn, "Events": events}]
        if topic_arn:
            config["TopicConfigurations"] = [{"TopicArn": topic_arn, "Events": events}]
        self.s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=config
        )

    def messages_left(self, queue_url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
        return sum(int(found["Attributes"][name]) for name in names)


def s3_environ(moto_url: str, **extra: Any) -> dict[str, str]:
    environ = {
        "HMA_S3_ENDPOINT_URL": moto_url,
        "HMA_S3_SQS_ENDPOINT_URL": moto_url,
        "HMA_S3_PATH_STYLE": "true",
        "HMA_S3_REGION": REGION,
        "HMA_S3_WAIT_SECONDS": "1",
    }
    for name, value in extra.items():
        environ[f"HMA_S3_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return environ


def with_s3(settings: Settings, moto_url: str, **extra: Any) -> Settings:
    """``settings`` with the ``[s3]`` section pointed at moto (``extra``: more HMA_S3_*)."""
    environ = {**settings.plugin_environ, **s3_environ(moto_url, **extra)}
    return attrs.evolve(settings, plugin_environ=environ)


class SnsHost:
    """Stands in for ``sns.<region>.amazonaws.com``: serves signing certificates (moto's, or
    ones a test registers) and records subscription confirmations."""

    def __init__(self, moto_url: str) -> None:
        self.certificates: dict[str, bytes] = {}
        self.confirmations: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if "Action=ConfirmSubscription" in self.path:
                    host.confirmations.append(self.path)
                    body, status = b"<ConfirmSubscriptionResponse/>", 200
                elif path in host.certificates:
                    body, status = host.certificates[path], 200
                else:
                    answer = requests.get(moto_url + self.path, headers=_SNS_SCOPE, timeout=5)
                    body, status = answer.content, answer.status_code
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
