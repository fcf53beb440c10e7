"""The one redaction rule (dbplatform.manifest.redact), against a corpus of leaks: the cases the
security review (M-4) found leaking through the preview report, the infra diff and the logs, plus
generated secrets in every shape the rule claims to catch. The consumers are tested end to end:
the preview report, the infra diff and the operations' audit/verbose redaction."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbplatform.manifest.redact import REDACTED, is_credential_name, redact, redact_text, scrub

# (property name, value, the secret part that must not survive). From security.md M-4's crafted
# preview `leaky.json` and its `is_credential_name` list.
NAMED_LEAKS = [
    ("DATABASE_URL", "postgres://dbadmin:dburl-PASS-111@db.example:5432/app", "dburl-PASS-111"),
    ("DB_PASS", "pass-value-444555", "pass-value-444555"),
    ("DB_PWD", "pwd-value-222333", "pwd-value-222333"),
    ("AUTH", "Bearer authhdr-777888999", "authhdr-777888999"),
    ("HMAC_KEY", "hmac-value-31337", "hmac-value-31337"),
    ("SIGNING_KEY", "signing-value-4242", "signing-value-4242"),
    ("BASIC_AUTH_B64", "ZGJhZG1pbjpTM2NyM3QtUGE1NXdvcmQtVmFsdWU=", "ZGJhZG1pbjpTM2NyM3Q"),
    ("DSN", "host=db user=dbadmin password=dsn-pw-999 dbname=app", "dsn-pw-999"),
    ("CONN", '{"username": "u", "password": "json-in-string-pw-12"}', "json-in-string-pw-12"),
    ("webhookSecretName", "ends-with-name-but-is-value-XYZ", "ends-with-name-but-is-value-XYZ"),
    ("apiTokenId", "token-id-but-value-QRS", "token-id-but-value-QRS"),
    ("pwd", "short-pwd-1", "short-pwd-1"),
    ("pass", "p4ss-value", "p4ss-value"),
    ("x-api-key", "k3y-value-abc", "k3y-value-abc"),
    ("signingKey", "sk-value-xyz", "sk-value-xyz"),
    ("connectionString", "Server=h;Password=cs-pw-1;", "cs-pw-1"),
    ("Authorization", "Basic dXNlcjpwYXNzd29yZDE=", "dXNlcjpwYXNzd29yZDE"),
    ("tokenId", "tok-value-7", "tok-value-7"),
    ("clientSecretId", "cs-value-8", "cs-value-8"),
]

# Credential shapes under harmless names: the value itself gives them away.
SHAPE_LEAKS = [
    ("postgresql://app:shape-pw-1@db:5432/app?sslmode=require", "shape-pw-1"),
    ("mysql://root:shape-pw-2@10.0.0.1/db", "shape-pw-2"),
    ("host=h port=5432 user=u password=shape-pw-3 sslmode=verify-full", "shape-pw-3"),
    ("https://api.example/v1?token=shape-tok-4&x=1", "shape-tok-4"),
    ("curl -H 'Authorization: Bearer shape-bearer-5'", "shape-bearer-5"),
    ('{"engine": "postgres", "password": "shape-json-6"}', "shape-json-6"),
    ('[{"name": "x", "secret": "shape-json-7"}]', "shape-json-7"),
    # PagerDuty Events API v1 integration URL (the review's live case): the path is the key.
    (
        "https://events.pagerduty.com/integration/0123456789abcdef0123456789abcdef/enqueue",
        "0123456789abcdef0123456789abcdef",
    ),
    ("https://hooks.slack.com/services/T000/B000/XXXXshapeslack", "XXXXshapeslack"),
    # base64 of `dbadmin:S3cr3t-Pa55word-Value` (HTTP Basic credentials) in free text
    ("creds ZGJhZG1pbjpTM2NyM3QtUGE1NXdvcmQtVmFsdWU= here", "ZGJhZG1pbjpTM2NyM3Q"),
    # base64 of a DSN with a password
    (base64.b64encode(b"password=shape-b64-8").decode(), "cGFzc3dvcmQ9c2hhcGUtYjY0LTg"),
]

# What must stay readable: references to credentials, flags, ordinary values.
KEPT = [
    ({"masterUserSecretKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc"}, None),
    ({"secretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-master-AbCdEf"}, None),
    ({"manageMasterUserPassword": True, "iamDatabaseAuthenticationEnabled": False}, None),
    ({"tags": {"dbplatform:secret-kind": "master"}}, None),
    ({"SecretId": "dbplatform/prod/db/master"}, None),
    ({"engine": "postgres", "instanceClass": "db.r6g.large", "port": 5432}, None),
    ({"endpoint": "https://example.com/health"}, None),
    ({"policy": json.dumps({"Statement": [{"Effect": "Deny", "Action": "kms:*"}]})}, None),
    ({"description": "Rotates the master password every 30 days"}, None),
]


@pytest.mark.parametrize(("name", "value", "leak"), NAMED_LEAKS, ids=[n for n, *_ in NAMED_LEAKS])
def test_values_under_credential_names_are_hidden(name: str, value: str, leak: str) -> None:
    assert is_credential_name(name), name
    shown = json.dumps(redact({"environment": {name: value}}))
    assert leak not in shown and REDACTED in shown


@pytest.mark.parametrize(("value", "leak"), SHAPE_LEAKS)
def test_credential_shapes_are_hidden_under_any_name(value: str, leak: str) -> None:
    shown = json.dumps(redact({"description": value, "items": [value]}))
    assert leak not in shown, shown
    assert REDACTED in shown


@pytest.mark.parametrize(("doc", "_"), KEPT)
def test_references_flags_and_plain_values_stay_readable(doc: dict[str, object], _: None) -> None:
    assert redact(doc) == doc


def test_a_url_keeps_its_host_and_user_without_the_password() -> None:
    assert redact_text("postgres://dbadmin:pw-123456@db.example:5432/app") == (
        f"postgres://dbadmin:{REDACTED}@db.example:5432/app"
    )


def test_known_secrets_are_scrubbed_in_their_encoded_forms() -> None:
    # From M-4: a Pulumi-marked secret leaked URL-encoded and base64-encoded in diagnostics.
    secret = "Marked$ecret#Val%ue!"
    text = (
        f"plain {secret}; url Marked%24ecret%23Val%25ue%21; b64 TWFya2VkJGVjcmV0I1ZhbCV1ZSE=; "
        "urlsafe TWFya2VkJGVjcmV0I1ZhbCV1ZSE"
    )
    out = scrub(text, [secret])
    for form in (secret, "Marked%24ecret", "TWFya2VkJGVjcmV0I1ZhbCV1ZSE"):
        assert form not in out
    assert out.count(REDACTED) == 4


# Secrets as generated by hand or by tools: letters, digits and the punctuation URLs carry.
_SECRET = st.text(
    alphabet=st.sampled_from("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-_.~!$*"),
    min_size=10,
    max_size=40,
)
_TEMPLATES = [
    "postgres://app:{s}@db.internal:5432/app",
    "host=db user=app password={s} dbname=app",
    "Authorization: Bearer {s}",
    '{{"username": "app", "password": "{s}"}}',
    "https://x.example/cb?api_key={s}&v=2",
]


@settings(max_examples=60, deadline=None)
@given(secret=_SECRET, template=st.sampled_from(_TEMPLATES))
def test_generated_secrets_in_credential_shapes_never_survive(secret: str, template: str) -> None:
    shown = json.dumps(redact({"note": template.format(s=secret)}))
    assert secret not in shown


@settings(max_examples=60, deadline=None)
@given(secret=_SECRET, before=st.text(max_size=20), after=st.text(max_size=20))
def test_known_secrets_never_survive_in_any_encoding(secret: str, before: str, after: str) -> None:
    raw = secret.encode()
    for form in (secret, quote(secret, safe=""), base64.b64encode(raw).decode()):
        out = scrub(f"{before} {form} {after}", [secret])
        assert secret not in out and form not in out, (form, out)


@settings(max_examples=60, deadline=None)
@given(value=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=30))
def test_anything_under_a_password_name_is_hidden(value: str) -> None:
    assert redact({"DB_PASSWORD": value}) == {"DB_PASSWORD": REDACTED}


def test_the_operations_redact_with_the_same_rule() -> None:
    # The audit records and the verbose log of every operation go through ops.aws.redact.
    from dbplatform.ops.aws import redact as redact_params

    params = {
        "DBInstanceIdentifier": "prod-primary",
        "MasterUserPassword": "op-pw-123456",
        "Description": "postgres://a:op-url-pw-9@h/db",
    }
    shown = json.dumps(redact_params(params))
    assert "op-pw-123456" not in shown and "op-url-pw-9" not in shown
    assert "prod-primary" in shown


def test_ci_artifacts_mask_account_ids_and_hide_credentials(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from dbplatform.manifest.redact import main, mask_accounts

    assert mask_accounts(
        "arn:aws:iam::123456789012:role/x arn:aws:rds:us-east-1:210987654321:db:p"
    ) == ("arn:aws:iam::************:role/x arn:aws:rds:us-east-1:************:db:p")
    monkeypatch.setattr("sys.stdin", io.StringIO("restored arn:aws:rds:us-east-1:123456789012:db:p "
                                                 "via postgres://u:drill-pw-1@h/db\n"))  # fmt: skip
    assert main() == 0
    out = capsys.readouterr().out
    assert "123456789012" not in out and "drill-pw-1" not in out and "db:p" in out
