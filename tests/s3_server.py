"""A real S3-compatible server for the tests: moto's server mode (`.tools/bin/moto_server`,
installed by scripts/install-tools.sh), one per test process on a free port, started on first use.

It runs with authentication on (moto's INITIAL_NO_AUTH_ACTION_COUNT): the first three requests
create an IAM user with an `s3:*` policy and its access key, and from then on every request
must carry a valid AWS Signature V4 by that key, or the server answers 403. Data lives in the
server's memory and goes with it; each test run still uses a bucket of its own.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from .support import TOOLS_BIN

PYTHON = TOOLS_BIN.parent / "venv" / "bin" / "python"
REGION = "us-east-1"
IAM_USER = "svcgen-tests"
# The three unauthenticated requests spent on the user, its policy and its access key.
SETUP_REQUESTS = 3
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key_id: str
    secret_access_key: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """S3_URL as generated projects read it: the endpoint, the key in its userinfo
        (percent-encoded: a secret key has `/` and `+` in it)."""
        userinfo = f"{quote(self.access_key_id, safe='')}:{quote(self.secret_access_key, safe='')}"
        return self.endpoint.replace("://", f"://{userinfo}@", 1)

    def create_bucket(self, name: str) -> None:
        """A bucket, through a signed request (boto3 comes with moto in .tools/venv)."""
        script = (
            "import sys, boto3\n"
            "endpoint, key_id, secret, region, name = sys.argv[1:]\n"
            "boto3.client('s3', endpoint_url=endpoint, region_name=region,"
            " aws_access_key_id=key_id, aws_secret_access_key=secret).create_bucket(Bucket=name)\n"
        )
        args = [self.endpoint, self.access_key_id, self.secret_access_key, REGION, name]
        subprocess.run(
            [str(PYTHON), "-c", script, *args], check=True, capture_output=True, timeout=60
        )

    def env(self, bucket: str) -> dict[str, str]:
        """A generated project's storage variables: this server and a new bucket `bucket`."""
        self.create_bucket(bucket)
        return {"S3_URL": self.url, "S3_BUCKET": bucket, "S3_REGION": REGION}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_server: S3Server | None = None
#: The bucket of `local_env()`, one per test process (each has its own server).
LOCAL_BUCKET = "svcgen-tests"
LOCAL_VARIABLES = ("S3_URL", "S3_BUCKET", "S3_REGION")


def s3_server() -> S3Server:
    """This process's server, started on first use and stopped when the process exits."""
    global _server
    if _server is None or _server.process.poll() is not None:
        _server = start()
        atexit.register(_server.stop)
    return _server


class LocalEnv(Mapping[str, str]):
    """This machine's S3 variables, like the catalog's `this_machine` URLs of the other
    services, except that the server starts (and its bucket is made) on the first value read:
    the variable names are known without it."""

    def __init__(self) -> None:
        self._values: dict[str, str] | None = None

    def _resolved(self) -> dict[str, str]:
        if self._values is None:
            server = s3_server()
            self._values = server.env(LOCAL_BUCKET)
        return self._values

    def __getitem__(self, name: str) -> str:
        if name not in LOCAL_VARIABLES:
            raise KeyError(name)
        return self._resolved()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(LOCAL_VARIABLES)

    def __len__(self) -> int:
        return len(LOCAL_VARIABLES)


def local_env() -> LocalEnv:
    return LocalEnv()


def start(timeout: float = 60) -> S3Server:
    binary = TOOLS_BIN / "moto_server"
    if not binary.exists():
        raise LookupError(f"{binary} is missing: run scripts/install-tools.sh")
    port = _free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"svcgen-moto-{os.getpid()}-{port}.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(port, process, timeout, log)
        key_id, secret = _create_access_key(endpoint)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return S3Server(endpoint, key_id, secret, process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Until the port accepts a connection (a TCP connect is no request: it spends none)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"moto_server did not listen on {port} within {timeout} s: {log.read_text()}"
    )


def _iam(endpoint: str, action: str, **params: str) -> str:
    """One unauthenticated IAM query call (only the setup requests may be)."""
    # The credential scope routes the request to IAM; the signature is not checked yet.
    scope = f"AKIDSETUP/20260101/{REGION}/iam/aws4_request"
    response = httpx.post(
        endpoint + "/",
        data={"Action": action, "Version": "2010-05-08", **params},
        headers={"Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, Signature=0"},
        timeout=30,
    )
    response.raise_for_status()
    return response.text


def _create_access_key(endpoint: str) -> tuple[str, str]:
    _iam(endpoint, "CreateUser", UserName=IAM_USER)
    _iam(
        endpoint,
        "PutUserPolicy",
        UserName=IAM_USER,
        PolicyName="s3",
        PolicyDocument=json.dumps(POLICY),
    )
    answer = _iam(endpoint, "CreateAccessKey", UserName=IAM_USER)
    key_id = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", answer)
    secret = re.search(r"<SecretAccessKey>([^<]+)</SecretAccessKey>", answer)
    if key_id is None or secret is None:
        raise RuntimeError(f"moto_server gave no access key: {answer}")
    return key_id.group(1), secret.group(1)
