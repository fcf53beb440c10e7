"""Argument types of the commands' flags: a bad value is an argparse error (exit 2) that names the
flag, the value and the rule, never a traceback and never a value that silently disables a check.

`--max-lag nan` used to pass `value > 0` (every comparison with NaN is false) and turned the lag
gate off; every number here is finite and within a stated range.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

# Blanks around the number are allowed and dropped before converting it: regex's `\s` is
# Unicode whitespace (U+001F is one), which int() and float() do not all strip themselves.
_INTEGER = re.compile(r"\s*(?P<number>[+]?[0-9]{1,12})\s*")
_DECIMAL = re.compile(
    r"\s*(?P<number>[+-]?([0-9]{1,12}(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?)\s*"
)


def _plain(value: float) -> str:
    """1048576, not 1.04858e+06: a bound as a user types it."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def number(
    low: float, high: float, *, integer: bool = False, unit: str = "", low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (`low_open`: above low), ASCII digits."""
    what = "a whole number" if integer else "a finite number"
    bounds = (
        f"above {_plain(low)} and at most {_plain(high)}"
        if low_open
        else f"{_plain(low)}..{_plain(high)}"
    )
    rule = f"must be {what} {bounds}{' ' + unit if unit else ''}"

    def parse(text: str) -> float:
        found = (_INTEGER if integer else _DECIMAL).fullmatch(text)
        if not found:
            raise argparse.ArgumentTypeError(f"{text!r} {rule}")
        value = int(found["number"]) if integer else float(found["number"])
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"{text!r} {rule}")
        return value

    parse.__name__ = "number"  # argparse's fallback message names the type
    return parse


def integer(low: int, high: int, *, unit: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""
    inner = number(low, high, integer=True, unit=unit)

    def parse(text: str) -> int:
        return int(inner(text))

    parse.__name__ = "integer"
    return parse


PORT = integer(1, 65535)


def region(text: str) -> str:
    """An AWS region botocore knows in a partition this program writes ARNs for."""
    from infra.config import region_rule

    if rule := region_rule(text):
        raise argparse.ArgumentTypeError(f"{text!r} {rule}")
    return text


def http_url(text: str) -> str:
    """An http(s) URL with a host and a valid port."""
    from infra.config import url_rule

    if rule := url_rule(text, ("http", "https")):
        raise argparse.ArgumentTypeError(f"{text!r} {rule}")
    return text


def _refuse(text: str, rule: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{text!r} {rule}")


def instance_class(text: str) -> str:
    """An RDS DB instance class this program can size (policy/instance_classes.py, from the RDS
    User Guide's "DB instance classes" table): `db.foo` would reach CreateDBInstance."""
    from policy import instance_classes

    try:
        instance_classes.resolve(text)
    except ValueError as exc:
        raise _refuse(text, str(exc)) from None
    return text


def engine_version(text: str) -> str:
    """A PostgreSQL version RDS offers, 'MAJOR' or 'MAJOR.MINOR' (the stack file's rule for
    database.engineVersion, infra/config.py SUPPORTED_MAJORS)."""
    from infra.config import SUPPORTED_MAJORS

    if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3})?", text):
        raise _refuse(text, "must be a PostgreSQL version 'MAJOR' or 'MAJOR.MINOR', e.g. 17.2")
    if text.split(".", maxsplit=1)[0] not in SUPPORTED_MAJORS:
        raise _refuse(
            text, f"has a major version RDS does not offer ({', '.join(SUPPORTED_MAJORS)})"
        )
    return text


# IAM role ARN (IAM User Guide "IAM identifiers": arn:PARTITION:iam::ACCOUNT:role/PATH/NAME; a
# path is '/'-delimited, a role name 1-64 of [A-Za-z0-9+=,.@_-]) in the partitions this program
# writes ARNs for (infra/config.py region_rule: aws, aws-cn, aws-us-gov).
_ROLE_ARN = re.compile(
    r"arn:(aws|aws-cn|aws-us-gov):iam::[0-9]{12}:role/([\x21-\x7e]{1,510}/)?[A-Za-z0-9+=,.@_-]{1,64}"
)


def role_arn(text: str) -> str:
    """An IAM role ARN (AWS Backup StartRestoreJob IamRoleArn): not a role name or a path."""
    if len(text) > 2048 or not _ROLE_ARN.fullmatch(text):
        raise _refuse(
            text,
            "must be an IAM role ARN, arn:aws:iam::123456789012:role/NAME (partition aws, aws-cn "
            "or aws-us-gov)",
        )
    return text


# EC2 CreateSecurityGroup (botocore ec2 model, GroupName): up to 255 characters of a-z, A-Z,
# 0-9, spaces and ._-:/()#,@[]+=&;{}!$*, not starting with sg-; a group ID is sg- and 8 or 17
# hex digits (EC2 resource IDs).
_SG_ID = re.compile(r"sg-([0-9a-f]{8}|[0-9a-f]{17})")
_SG_NAME = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{1,255}")


def security_group(text: str) -> str:
    """A VPC security group ID (sg-0123abcd...) or group name by EC2's rules."""
    if text.startswith("sg-"):
        if not _SG_ID.fullmatch(text):
            raise _refuse(text, "must be a security group ID, sg- and 8 or 17 hex digits")
    elif not _SG_NAME.fullmatch(text):
        raise _refuse(
            text,
            "must be a security group ID (sg-...) or a name of 1-255 letters, digits, spaces "
            "and ._-:/()#,@[]+=&;{}!$* (EC2 GroupName)",
        )
    return text


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def hostname(text: str) -> str:
    """A host name (RFC 1123 labels, at most 253 characters) or an IPv4/IPv6 address."""
    import ipaddress

    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    name = text.removesuffix(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(p) for p in name.split(".")):
        raise _refuse(text, "must be a host name (letters, digits, '-', dots) or an IP address")
    return text


def utc_time(text: str) -> str:
    """An ISO 8601 time (a naive one is UTC), e.g. 2026-11-23T04:30:00Z; kept as text."""
    from dbplatform.ops.clock import parse_iso

    try:
        parse_iso(text)
    except ValueError:
        raise _refuse(
            text, "is not an ISO 8601 time; use e.g. 2026-11-23T04:30:00Z (UTC)"
        ) from None
    return text
