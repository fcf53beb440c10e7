"""Which property values are credentials, and how they are shown: one rule for every report that
prints inputs (the offline infra diff, the `pulumi preview` report), so they hide the same things.
"""

from __future__ import annotations

import re
from typing import Any

from infra.offline import SECRET

REDACTED = SECRET
"""What a hidden value reads as: the marker synth writes for a secret input."""

# How Pulumi marks a secret value in serialized state (resource/sig.go): a map holding this key and
# value, with the plaintext (or ciphertext) under "value" or "ciphertext". A manifest holds none:
# synth writes REDACTED in their place.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"

# Property names whose values are credentials even where Pulumi did not mark them secret...
_CREDENTIAL_NAME = re.compile(r"passw(or)?d|secret|token|private_?key|api_?key|credential", re.I)
# ...unless the name only points to or describes one (secretId, kmsKeyArn, secretName, the
# dbplatform:secret-kind tag): hiding those would hide which secret a change touches.
_REFERENCE_NAME = re.compile(r"(id|arn|name|kind)$", re.I)


def is_credential_name(name: str) -> bool:
    """True when a value under this property name may be a credential."""
    return bool(_CREDENTIAL_NAME.search(name)) and not _REFERENCE_NAME.search(name)


def is_pulumi_secret(value: object) -> bool:
    """True for a value Pulumi serialized as secret."""
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE


def redact(value: Any, sensitive: bool = False) -> Any:
    """Copy of `value` with Pulumi secrets and values under credential-like names replaced.

    `sensitive`: `value` itself sits under a credential-like name (everything in it is hidden).
    """
    if is_pulumi_secret(value):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, sensitive or is_credential_name(str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, sensitive) for v in value]
    # A flag like manageMasterUserPassword=true reveals nothing; any other value under such a name
    # may be the credential itself.
    if sensitive and value is not None and not isinstance(value, bool):
        return REDACTED
    return value
