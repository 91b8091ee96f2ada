"""Listener CPU per SQS message deleted: one DeleteMessage per message vs DeleteMessageBatch.

    .venv/bin/python bench/s3_sqs_delete_cpu.py

Starts moto's server in its own process (so its CPU is not counted), fills a queue with 100
messages, receives them, and deletes them both ways, timing this process's CPU. Prints figures;
it is not a test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import boto3

N = 100


def main() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(
        AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1"
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}")
        url = sqs.create_queue(QueueName="bench")["QueueUrl"]
        for mode in ("one call per message", "one call per batch of 10") * 2:
            for number in range(N):
                sqs.send_message(QueueUrl=url, MessageBody=str(number))
            received: list[dict[str, Any]] = []
            while len(received) < N:
                answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
                received += answer.get("Messages", [])
            started = time.process_time()
            if mode.endswith("10"):
                for start in range(0, N, 10):
                    entries = [
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                        for n, m in enumerate(received[start : start + 10])
                    ]
                    sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            else:
                for message in received:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            cpu_ms = (time.process_time() - started) / N * 1000
            print(f"{mode}: {cpu_ms:.2f} ms listener CPU per message deleted")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
