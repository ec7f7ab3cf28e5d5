"""Fixtures for the object-store tests: a real S3-compatible server on loopback (moto's
ThreadedMotoServer, one per test session: tests/conftest.py's `moto_server`, shared by
every module that registers these), the standard AWS variables pointing at it, a fresh
bucket. tests/lake/conftest.py registers them."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def s3_server(moto_server):
    return moto_server


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Standard AWS variables pointing at the loopback server (fake credentials)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_server,
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def bucket(s3_env):
    import boto3

    name = f"lake-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=name)
    return name
