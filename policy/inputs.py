"""Bounds every input file shares before and after it is parsed: a size limit, UTF-8 text, JSON
without NaN, infinities or duplicate keys, and a nesting depth and value count a person would
never write.

The stack file loader (infra/config.py), the manifest loader (policy/manifest.py) and the preview
loader (dbplatform/preview/digest.py) call these first, so a binary file, several megabytes of
junk or a hostile YAML alias bomb is refused with one line instead of a parser traceback or a
process that runs out of memory. Self-contained: the policy pack imports nothing outside itself.
"""

from __future__ import annotations

import json
from typing import Any

# A stack file is a few kB, a manifest a few hundred kB, a preview of this program under 1 MB.
# The limits leave ten times that room and still refuse a wrong file before any parser runs.
MAX_STACK_FILE_BYTES = 1 << 20
MAX_DOCUMENT_BYTES = 32 << 20
# Deeper than any document these tools write (a preview's state nests about 10 levels).
MAX_DEPTH = 64
# YAML aliases can make a small file expand to billions of values; nothing real has 1M.
MAX_VALUES = 1_000_000


class InputError(ValueError):
    """An input that cannot be read as text of the expected kind; the message says why."""


def decode(data: bytes, source: str, limit: int) -> str:
    """`data` as UTF-8 text, refusing it when it is over `limit` bytes or not UTF-8."""
    if len(data) > limit:
        raise InputError(
            f"{source} is {len(data):,} bytes; the limit is {limit:,} bytes "
            f"({limit >> 20} MiB): is it the right file?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise InputError(f"{source} contains NUL bytes: it is a binary file, not text")
    return text.removeprefix("\ufeff")  # a UTF-8 byte order mark is harmless


class _Constant(ValueError):
    pass


class _Duplicate(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Constant(f"{name} is not a JSON number")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 8259 4: names "SHOULD be unique"; Python keeps the last, Go's encoding/json (Pulumi)
    # the last too but other readers the first: a key written twice means two different files.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(f"key {key!r} appears twice in one object; keep one")
        out[key] = value
    return out


def loads_json(text: str, source: str) -> Any:
    """Strict JSON: NaN and Infinity (which Python's json accepts) and a key written twice in
    one object (which it silently resolves to the last) are refused."""
    try:
        data = json.loads(
            text, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicates
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except _Duplicate as exc:
        raise InputError(f"{source} is not valid JSON for this tool: {exc}") from None
    except _Constant as exc:
        raise InputError(f"{source} is not valid JSON: {exc} (numbers must be finite)") from None
    except RecursionError:
        raise InputError(f"{source} nests deeper than {MAX_DEPTH} levels") from None
    check_shape(data, source)
    return data


def check_shape(data: Any, source: str) -> None:
    """Refuse values nested deeper than MAX_DEPTH or holding more than MAX_VALUES values.

    Iterative, so a hostile depth cannot overflow the stack; aliases (a YAML value reached twice)
    are counted each time they are reached, since that is what every later walk will pay.
    """
    todo: list[tuple[Any, int, str]] = [(data, 0, "")]
    count = 0
    while todo:
        value, depth, path = todo.pop()
        count += 1
        if count > MAX_VALUES:
            raise InputError(f"{source} holds more than {MAX_VALUES:,} values (YAML aliases?)")
        if depth > MAX_DEPTH:
            where = (path or "the document")[:120]
            raise InputError(f"{source}: {where} nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            todo.extend((v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(value))
