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

_INTEGER = re.compile(r"\s*[+]?[0-9]{1,12}\s*")
_DECIMAL = re.compile(r"\s*[+-]?([0-9]{1,12}(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?\s*")


def number(
    low: float, high: float, *, integer: bool = False, unit: str = "", low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (`low_open`: above low), ASCII digits."""
    what = "a whole number" if integer else "a finite number"
    bounds = f"above {low:g} and at most {high:g}" if low_open else f"{low:g}..{high:g}"
    rule = f"must be {what} {bounds}{' ' + unit if unit else ''}"

    def parse(text: str) -> float:
        pattern = _INTEGER if integer else _DECIMAL
        if not pattern.fullmatch(text):
            raise argparse.ArgumentTypeError(f"{text!r} {rule}")
        value = int(text) if integer else float(text)
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
