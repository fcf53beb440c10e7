"""Which values are credentials, and how they are shown: the ONE rule for everything that prints
inputs or arguments (the offline infra diff, the `pulumi preview` report, the operations' audit
records and verbose logs), so they all hide the same things.

A value is hidden when any of these says so:
- Pulumi marked it secret (the signature map of `resource/sig.go`);
- it sits under a credential-like property name (`password`, `DB_PASS`, `DATABASE_URL`,
  `x-api-key`, `signingKey`, `Authorization`, ...), unless it is an ARN or an AWS resource id,
  which only points to a credential;
- its shape is a credential wherever it appears: `scheme://user:password@host`, `password=...`
  (libpq DSNs, query strings), `Bearer ...`/`Basic ...`, a webhook URL whose path is the key
  (PagerDuty integration, Slack hooks), a JSON document inside a string (decoded and walked by
  the same rule), a base64 token that decodes to any of these;
- it is a known secret (`scrub`), also in its URL-encoded and base64-encoded forms.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from infra.offline import SECRET

REDACTED = SECRET
"""What a hidden value reads as: the marker synth writes for a secret input."""

# How Pulumi marks a secret value in serialized state (resource/sig.go): a map holding this key and
# value, with the plaintext (or ciphertext) under "value" or "ciphertext". A manifest holds none:
# synth writes REDACTED in their place.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"

# Property names whose values are credentials even where Pulumi did not mark them secret. Words
# are matched inside camelCase and snake/kebab names (`DB_PASS`, `signingKey`, `x-api-key`).
_CREDENTIAL_NAME = re.compile(
    r"passw(or)?d|passwd|passphrase|(^|[-_.])pass($|[-_.])|pwd|secret|token|private[-_]?key"
    r"|api[-_]?key|access[-_]?key|credential|auth|bearer|cookie|session|dsn|conn(ection)?"
    r"|signing|hmac|(^|[-_.])(url|uri)$|(^|[a-z]|[-_.])(Url|Uri|URL|URI)$|webhook",
    re.I,
)
# ...except names that classify one (the `dbplatform:secret-kind` tag, `authenticationType`): their
# values are a short vocabulary, and hiding them would hide which secret a change touches.
_CLASSIFIER_NAME = re.compile(r"(kind|type|mode|enabled)$", re.I)
# A flag or a size under such a name reveals nothing: kept as is.
_HARMLESS = (bool, int, float, type(None))
# Values that only point to a credential (an ARN, an AWS resource id such as `sg-0a1b2c3d`):
# hiding them would hide which secret a change touches. Anything else under a credential-like
# name (`webhookSecretName: "the-value-itself"`) is hidden: the review found values there.
_REFERENCE_VALUE = re.compile(
    r"^arn:aws[\w-]*:[\w-]+:[\w-]*:\d{0,12}:\S+$"  # ARN format (IAM User Guide, "IAM ARNs")
    r"|^[a-z]{1,12}-[0-9a-f]{8,17}$"  # EC2-style resource id: sg-0a1b2c3d, subnet-...
)

_REFERENCE_NAME = re.compile(r"(id|arn|name)$", re.I)
# Secrets Manager / SSM hierarchy: lowercase path segments (the names this program gives secrets).
_HIERARCHICAL = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.@-]*)+$")

# Value shapes that are credentials wherever they appear.
# RFC 3986 userinfo: scheme://user:password@host
_USERINFO = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)(?P<secret>[^\s@/'\"]+)(?=@)", re.I
)
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|pass|secret|token|api[-_]?key|access[-_]?key|sig"
    r"|signature|client[-_]?secret|auth)(?:\s*=\s*|['\"]?:\s+))"
    r"(?P<quote>['\"]?)(?P<secret>[^\s&;'\",}]+)",
    re.I,
)
# RFC 6750 bearer tokens and RFC 7617 basic credentials in an Authorization value.
_AUTH_SCHEME = re.compile(r"(?P<head>\b(?:Bearer|Basic|Token|Digest)\s+)(?P<secret>[^\s'\",]{6,})")
# Webhook URLs whose path carries the key (PagerDuty integration key: "Events API v1"
# https://events.pagerduty.com/integration/<key>/enqueue; Slack incoming webhooks
# https://hooks.slack.com/services/T.../B.../<secret>).
_PATH_KEY = re.compile(
    r"(?P<head>/integration/)(?P<secret>[^/\s'\"?#]+)|(?P<head2>hooks\.slack\.com/services/)"
    r"(?P<secret2>[^\s'\"?#]+)",
    re.I,
)
_BASE64_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{12,}={0,2}(?![A-Za-z0-9+/=_-])")
_MIN_SECRET_LEN = 4


@functools.lru_cache(maxsize=4096)
def is_credential_name(name: str) -> bool:
    """True when a value under this property name may be a credential."""
    return bool(_CREDENTIAL_NAME.search(name)) and not _CLASSIFIER_NAME.search(name)


def is_pulumi_secret(value: object) -> bool:
    """True for a value Pulumi serialized as secret."""
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE


def is_reference(value: str) -> bool:
    """True for an ARN or an AWS resource id: it names a credential, it is not one."""
    return bool(_REFERENCE_VALUE.match(value))


def redact(value: Any, sensitive: bool = False) -> Any:
    """Copy of `value` with credentials replaced by REDACTED (the rule in the module docstring).

    `sensitive`: `value` itself sits under a credential-like name.
    """
    if is_pulumi_secret(value):
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact_item(str(k), v, sensitive) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, sensitive) for v in value]
    if isinstance(value, _HARMLESS):
        return value
    if not isinstance(value, str):
        return REDACTED if sensitive else value
    if is_reference(value):
        return value
    return REDACTED if sensitive else redact_text(value)


def _redact_item(name: str, value: Any, sensitive: bool) -> Any:
    # A hierarchical secret name (`dbplatform/prod/db/master`) under a name that says it is a
    # reference (`SecretId`, `masterSecretName`) names the secret; a bare word there may be the
    # value itself (the review found `webhookSecretName: "<the value>"`).
    if isinstance(value, str) and _REFERENCE_NAME.search(name) and _HIERARCHICAL.match(value):
        return value
    return redact(value, sensitive or is_credential_name(name))


def redact_text(text: str) -> str:
    """`text` with every credential-shaped part replaced (a JSON document inside is walked)."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and len(stripped) > 1:
        try:
            doc = json.loads(stripped)
        except ValueError:
            pass
        else:
            clean = redact(doc)
            # Unchanged documents (key policies, parameter lists) keep their exact text.
            return text if clean == doc else json.dumps(clean, sort_keys=True)
    text = _USERINFO.sub(lambda m: m["head"] + REDACTED, text)
    text = _KEY_VALUE.sub(lambda m: m["head"] + m["quote"] + REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: m["head"] + REDACTED, text)
    text = _PATH_KEY.sub(lambda m: (m["head"] or m["head2"]) + REDACTED, text)
    return _BASE64_TOKEN.sub(_redact_base64, text)


def _redact_base64(match: re.Match[str]) -> str:
    token = match.group(0)
    decoded = _b64decode(token)
    if decoded is not None and (redact_text(decoded) != decoded or _looks_like_basic_auth(decoded)):
        return REDACTED
    return token


def _b64decode(token: str) -> str | None:
    """The UTF-8 text a base64 (or base64url) token encodes, or None if it is not one."""
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if text.isprintable() else None


def _looks_like_basic_auth(text: str) -> bool:
    """`user:password` (HTTP Basic credentials) after base64 decoding."""
    user, sep, password = text.partition(":")
    return bool(sep) and bool(user) and len(password) >= _MIN_SECRET_LEN and " " not in text


def encoded_forms(secret: str) -> set[str]:
    """A known secret as it can appear in text: as is, URL-encoded, base64 (standard and URL)."""
    raw = secret.encode("utf-8")
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(raw).decode("ascii")
        forms.update({encoded, encoded.rstrip("=")})
    return {f for f in forms if len(f) >= _MIN_SECRET_LEN}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with known secrets (in any encoded form) and credential shapes replaced."""
    for form in _forms(frozenset(secrets)):
        if form in text:
            text = text.replace(form, REDACTED)
    return redact_text(text)


@functools.lru_cache(maxsize=16)
def _forms(secrets: frozenset[str]) -> tuple[str, ...]:
    # Computed once per set of secrets: a report scrubs thousands of values with the same set.
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_LEN and secret != REDACTED:
            forms |= encoded_forms(secret)
    # Longest first so a secret containing another is replaced whole.
    return tuple(sorted(forms, key=lambda s: (-len(s), s)))


# An account id inside an ARN (or an STS assumed-role ARN naming a principal): recon data for
# anyone who can read a CI artifact (security review L-9).
_ACCOUNT_IN_ARN = re.compile(r"(arn:aws[\w-]*:[\w-]+:[\w-]*:)(\d{12})(:)")
MASKED_ACCOUNT = "************"


def mask_accounts(text: str) -> str:
    """`text` with the account id of every ARN masked (`arn:aws:rds:us-east-1:************:...`)."""
    return _ACCOUNT_IN_ARN.sub(lambda m: m[1] + MASKED_ACCOUNT + m[3], text)


def main() -> int:
    """Filter stdin to stdout for CI artifacts and summaries: secrets hidden, accounts masked."""
    sys.stdout.write(mask_accounts(redact_text(sys.stdin.read())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
