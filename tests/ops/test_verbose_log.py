"""`-vv` (botocore's debug log) as an operator reads it: commands run against moto with planted
credentials and secret values, and none of them may reach stdout or stderr in any of the forms
botocore prints (SigV4's canonical request `x-amz-security-token:...`, the request's headers as
`'X-Amz-Security-Token': b'...'`, `Authorization: AWS4-HMAC-SHA256 Credential=... Signature=...`,
`Signature:` and its value, response bodies as bytes reprs with JSON inside)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from dbplatform.ops.aws import SecretLogFilter
from tests.ops.support import AwsEnv, Run, run_module

pytestmark = pytest.mark.moto

ACCESS_KEY = "AKIAPLANTEDKEY7X2Q9Z"
SECRET_KEY = "planted/Secret+Access+Key0123456789abcdEFGH"
SESSION_TOKEN = "FwoGZXIvYXdzEPlantedSessionToken//////////wEaDPlanted+Token/Value=="
MASTER_PASSWORD = "Planted-Master-Password-5150"


@pytest.fixture(autouse=True)
def _quiet_after() -> Iterator[None]:
    """-vv turns botocore's logger to DEBUG and adds a handler on the root logger for the run's
    stderr; later tests in this process get them back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in ("botocore", "boto3", "urllib3")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def _planted_env(aws: AwsEnv) -> dict[str, str]:
    env = dict(aws.env)
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_SESSION_TOKEN=SESSION_TOKEN,
    )
    return env


def _assert_hidden(run: Run, *planted: str) -> None:
    for value in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, *planted):
        # also the halves: a rule that hid only a prefix would leave the rest
        for part in (value, value[: len(value) // 2], value[len(value) // 2 :]):
            assert part not in run.text, (part, _around(run.text, part))
    assert "Signature=" not in run.text.replace("Signature=[secret]", "")


def _around(text: str, part: str) -> str:
    at = text.find(part)
    return text[max(0, at - 200) : at + 200]


def _signed_requests_were_logged(run: Run) -> None:
    """What the operator does see: botocore's signing steps, with the values hidden."""
    assert "CanonicalRequest:" in run.stderr and "Sending http request" in run.stderr
    assert "x-amz-security-token:[secret]" in run.stderr
    assert "'X-Amz-Security-Token': b'[secret]'" in run.stderr
    assert "'Authorization': b'[secret]'" in run.stderr
    assert "Signature:\n[secret]" in run.stderr


def test_status_vv_shows_signed_requests_without_credentials(aws: AwsEnv) -> None:
    aws.seed("staging")
    run = run_module(
        "scripts.bluegreen", ["status", "--stack", "staging", "-vv"], env=_planted_env(aws)
    )
    assert run.code == 0, run.text
    _signed_requests_were_logged(run)
    _assert_hidden(run)


def test_vv_hides_the_master_secret_in_a_response_body(aws: AwsEnv, tmp_path: Path) -> None:
    """GetSecretValue's response body is logged as a bytes repr whose SecretString holds the
    master secret's JSON behind escaped quotes (`\\"password\\": \\"...\\"`)."""
    aws.seed("staging")
    aws.client("secretsmanager").put_secret_value(
        SecretId="dbplatform/staging/db/master",
        SecretString=json.dumps({"username": "dbadmin", "password": MASTER_PASSWORD}),
    )
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not used: nothing listens on the port\n")
    args = ["start", "--stack", "staging", "--engine-version", "17.2", "-vv"]
    args += ["--sql-ca-bundle", str(bundle), "--sql-host", "127.0.0.1", "--sql-port", "1"]
    run = run_module("scripts.bluegreen", args, env=_planted_env(aws))
    assert run.code == 3, run.text  # refused: the database cannot be reached
    assert "GetSecretValue" in run.stderr and '"SecretString": "[secret]"' in run.stderr
    _assert_hidden(run, MASTER_PASSWORD)


def test_rotate_secret_vv_never_shows_the_old_or_new_value(aws: AwsEnv) -> None:
    old = "OldPlantedAppSecretValue0123456789abcdefghijklmnopqrstuvwxyzABCD"
    sm = aws.client("secretsmanager")
    sm.create_secret(Name="dbplatform/prod/app/jwt-signing-key", SecretString=old)
    args = ["--stack", "prod", "--secret", "jwt-signing-key", "--yes", "-vv"]
    run = run_module("scripts.rotate_secret", args, env=_planted_env(aws))
    assert run.code == 0, run.text
    new = sm.get_secret_value(SecretId="dbplatform/prod/app/jwt-signing-key")["SecretString"]
    assert new != old
    _signed_requests_were_logged(run)
    _assert_hidden(run, old, new)


def test_status_vv_in_a_child_process_writes_no_credential_to_its_stderr(aws: AwsEnv) -> None:
    """A child's captured fds see every write, also a handler bound to the real stderr."""
    aws.seed("staging")
    args = ["status", "--stack", "staging", "-vv"]
    run = run_module("scripts.bluegreen", args, env=_planted_env(aws), process=True)
    assert run.code == 0, run.text
    _signed_requests_were_logged(run)
    _assert_hidden(run)


# --- the filter on botocore's own signer, for generated credentials -------------------------

# AWS access key ids, secret keys and session tokens (base64: `+`, `/`, `=`)
_KEY_ID = st.from_regex(r"A[KS]IA[A-Z0-9]{16}", fullmatch=True)
_SECRET = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
    min_size=20,
    max_size=80,
)


def _signed_log(key: str, secret: str, token: str, *, presign: bool) -> str:
    """What -vv prints while botocore signs one request: its own log records (canonical
    request, string to sign, signature) and the prepared request, through SecretLogFilter."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect()
    handler.addFilter(SecretLogFilter())
    auth_log = logging.getLogger("botocore.auth")
    saved = auth_log.level
    auth_log.addHandler(handler)
    auth_log.setLevel(logging.DEBUG)
    try:
        if presign:  # a presigned URL: the credentials go into its query string
            request = AWSRequest(
                method="GET",
                url="https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            )
        else:
            request = AWSRequest(
                method="POST",
                url="https://sts.us-east-1.amazonaws.com/",
                data=b"Action=GetCallerIdentity&Version=2011-06-15",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        credentials = Credentials(key, secret, token)
        signer = SigV4QueryAuth if presign else SigV4Auth
        signer(credentials, "sts", "us-east-1").add_auth(request)
        prepared = request.prepare()
        record = logging.LogRecord(
            "botocore.endpoint", logging.DEBUG, __file__, 0, "Sending http request: %s",
            (prepared,), None,
        )  # fmt: skip
        if handler.filter(record):
            records.append(record.getMessage())
    finally:
        auth_log.removeHandler(handler)
        auth_log.setLevel(saved)
    return "\n".join(records)


@settings(max_examples=40, deadline=None)
@given(key=_KEY_ID, secret=_SECRET, token=_SECRET, presign=st.booleans())
def test_generated_credentials_never_reach_the_signing_log(
    key: str, secret: str, token: str, presign: bool
) -> None:
    shown = _signed_log(key, secret, token, presign=presign)
    assert "CanonicalRequest:" in shown and "Signature:\n[secret]" in shown
    for value in (key, secret, token):
        assert value not in shown, (value, shown)
    assert quote(token, safe="") not in shown and quote(token, safe="-_.~") not in shown


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        # a repr of keyword arguments: the value is hidden within its quotes (security
        # re-review: `token=[secret]'S3cretVal'` showed the value after the marker)
        ("token='S3cretVal'", "token='[secret]'"),
        ('password="hunter22"', 'password="[secret]"'),
        ("MasterUserPassword='two words'", "MasterUserPassword='[secret]'"),
        ("secret_key='it\\'s'", "secret_key='[secret]'"),
        # forms the second re-review planted: prefixed, unterminated, escaped, compound values
        ("token=b'S3cret'", "token='[secret]'"),
        ("token=u'S3cret'", "token='[secret]'"),
        ("token='S3cret", "token='[secret]'"),
        ("token='a\\nS3cret'", "token='[secret]'"),
        ("token=('S3cret',)", "token=[secret]"),
        ("token='''S3cret'''", "token=[secret]"),
        ("token='a'+'S3cret'", "token=[secret]"),
        # the third re-review's: blanks after `=`, and values in brackets
        ("token= 'S3cret'", "token='[secret]'"),
        ("token=('a', 'S3cret')", "token=[secret]"),
        ("token={'k': 'S3cret'}", "token=[secret]"),
        (
            "Action=CreateDBInstance&MasterUserPassword=S3cret&Version=1",
            "Action=CreateDBInstance&MasterUserPassword=[secret]&Version=1",
        ),
        # an indented `name: value` line, as a YAML-like dump prints one
        ("  SecretString: value123", "  SecretString: [secret]"),
        # not credentials: left as they are
        ("Action=DescribeDBInstances&Version=2014-10-31", None),
        ("  Reason: the instance is available", None),
    ],
)
def test_quoted_and_indented_values_under_credential_names_are_hidden(
    line: str, shown: str | None
) -> None:
    from dbplatform.ops.aws import redact_text

    assert redact_text(line) == (line if shown is None else shown)
