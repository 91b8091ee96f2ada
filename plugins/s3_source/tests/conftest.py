"""Fixtures of the S3 plugin's tests: moto in server mode on loopback (one per session)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from s3_fixtures import AWS_ENV, Aws, SnsHost


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def aws(moto_url: str) -> Aws:
    return Aws(moto_url)


@pytest.fixture
def sns_host(moto_url: str) -> Iterator[SnsHost]:
    host = SnsHost(moto_url)
    yield host
    host.close()
