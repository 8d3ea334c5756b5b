"""The S3-compatible server the tests start (tests/s3_server.py): moto 5.2.5 in server mode,
answering the S3 HTTP API with AWS Signature V4 checked."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from .s3_server import PYTHON, S3Server, s3_server
from .support import IN_CI


@pytest.fixture(scope="module")
def server() -> S3Server:
    try:
        return s3_server()
    except LookupError as missing:  # not installed: a failure in CI, a skip elsewhere
        if IN_CI:
            pytest.fail(str(missing))
        pytest.skip(str(missing))


def test_it_is_the_pinned_moto() -> None:
    if not PYTHON.exists():
        pytest.skip("run scripts/install-tools.sh")
    version = subprocess.run(
        [str(PYTHON), "-c", "import moto; print(moto.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert version == "5.2.5"


def test_signed_requests_pass_and_badly_signed_ones_get_403(server: S3Server) -> None:
    bucket = f"svcgen-{uuid.uuid4().hex[:12]}"
    env = server.env(bucket)  # creates the bucket with a signed request
    assert env["S3_URL"].startswith("http://")
    assert "@127.0.0.1:" in env["S3_URL"]
    assert env["S3_BUCKET"] == bucket

    # The same request signed with another secret, through boto3 (moto's own dependency).
    script = (
        "import sys, boto3, botocore.exceptions as e\n"
        "c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',"
        " aws_access_key_id=sys.argv[2], aws_secret_access_key='not-the-secret')\n"
        "try:\n"
        "    c.list_objects_v2(Bucket=sys.argv[3])\n"
        "except e.ClientError as error:\n"
        "    print(error.response['Error']['Code'])\n"
    )
    command = [str(PYTHON), "-c", script, server.endpoint, server.access_key_id, bucket]
    answer = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    assert answer.stdout.strip() == "SignatureDoesNotMatch"
