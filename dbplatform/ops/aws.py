"""AWS sessions and clients for the commands: standard environment, retries, error text.

A session honors the standard environment as boto3 does (`AWS_PROFILE`, credentials,
`AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`); its region is the stack's `aws:region`
unless a command asks for another (the DR region). Clients retry throttling and 5xx with
botocore's adaptive mode (`AWS_RETRY_MODE`, `AWS_MAX_ATTEMPTS` override it).
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConfigParseError,
    InvalidConfigError,
    ProfileNotFound,
)

from dbplatform.manifest.redact import REDACTED
from dbplatform.manifest.redact import redact as redact_values
from dbplatform.manifest.redact import redact_text as redact_shapes
from dbplatform.ops.errors import BadUsage
from infra.config import StackConfig

DEFAULT_RETRY_MODE = "adaptive"
DEFAULT_MAX_ATTEMPTS = 8
# Past this, a throttled call would retry for hours with backoff; nobody means that.
MAX_ATTEMPTS_LIMIT = 100
READ_ONLY_PREFIXES = ("Describe", "List", "Get")


def retry_config() -> Config:
    """Client config: adaptive retries with backoff, bounded timeouts, a dbplatform app id."""
    mode = os.environ.get("AWS_RETRY_MODE", DEFAULT_RETRY_MODE)
    if mode not in ("adaptive", "standard", "legacy"):
        raise BadUsage(f"AWS_RETRY_MODE={mode!r} must be adaptive, standard or legacy")
    raw = os.environ.get("AWS_MAX_ATTEMPTS", str(DEFAULT_MAX_ATTEMPTS))
    # ASCII digits and ASCII blanks only: str.isdigit() admits '²' and str.strip() removes
    # '\x1f', both of which int() (and botocore, which reads the variable too) refuse.
    digits = re.fullmatch(r"[ \t\n\r\f\v]*([0-9]{1,3})[ \t\n\r\f\v]*", raw)
    if not digits or not 1 <= int(digits.group(1)) <= MAX_ATTEMPTS_LIMIT:
        raise BadUsage(
            f"AWS_MAX_ATTEMPTS={raw!r} must be a whole number 1..{MAX_ATTEMPTS_LIMIT} "
            "(total attempts per AWS call, the first included)"
        )
    check_endpoint_env()
    return Config(
        retries={"mode": mode, "total_max_attempts": int(digits.group(1))},
        connect_timeout=10,
        read_timeout=60,
        user_agent_appid="dbplatform",
    )


def check_endpoint_env() -> None:
    """Refuse (exit 2) an `AWS_ENDPOINT_URL[_<SERVICE>]` botocore would reject with a ValueError
    or dial on an impossible port, naming the variable."""
    from infra.config import url_rule

    for name, value in sorted(os.environ.items()):
        endpoint = name == "AWS_ENDPOINT_URL" or name.startswith("AWS_ENDPOINT_URL_")
        if endpoint and value and (rule := url_rule(value, ("http", "https"))):
            raise BadUsage(f"{name}={value!r} {rule}")


# Boolean settings botocore reads with `ensure_boolean` (botocore/utils.py): only "true" (any
# case) is true, every other text silently false; a typo would turn FIPS endpoints off unnoticed.
BOOLEAN_ENV = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT")
# botocore/configprovider.py and the SDKs' shared settings reference ("Standardized
# configuration settings": sts_regional_endpoints is legacy | regional).
CHOICE_ENV = {"AWS_STS_REGIONAL_ENDPOINTS": ("legacy", "regional")}


def check_aws_environment(session: boto3.Session | None = None) -> None:
    """Refuse (BadUsage, exit 2) an AWS setting in the environment or the AWS config file that
    botocore would reject at the first client, or would silently read as another value; the
    runner calls it before any AWS call, so every command answers the same way."""
    retry_config()  # AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, AWS_ENDPOINT_URL[_<SERVICE>]
    for name in BOOLEAN_ENV:
        value = os.environ.get(name)
        if value is not None and value.strip().lower() not in ("true", "false"):
            raise BadUsage(
                f"{name}={value!r} must be true or false (botocore reads any other text as false)"
            )
    for name, choices in CHOICE_ENV.items():
        value = os.environ.get(name)
        if value is not None and value.strip().lower() not in choices:
            raise BadUsage(f"{name}={value!r} must be one of {', '.join(choices)}")
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle and not os.path.isfile(bundle):  # botocore would fail each call as unreachable
        raise BadUsage(f"AWS_CA_BUNDLE={bundle!r} is not a file: point it at a PEM bundle")
    if session is not None:
        try:
            # Listing the profiles parses AWS_CONFIG_FILE and the shared credentials file.
            _ = session.available_profiles
        except (ConfigParseError, InvalidConfigError) as exc:
            raise BadUsage(f"{exc}: fix the file (AWS_CONFIG_FILE) or unset the variable") from None


def session_for(
    stack: StackConfig | None,
    region: str | None = None,
    *,
    profile: str | None = None,
    core: botocore.session.Session | None = None,
) -> boto3.Session:
    """A session in `region`, else the stack's region, else the environment's default region.

    The stack's region wins over `AWS_REGION`/`AWS_DEFAULT_REGION`: the database lives where
    its config says, whatever the operator's shell default is (`region_note` reports a clash).
    `profile` is the stack file's `aws:profile`, used when `AWS_PROFILE` is not set: an
    explicit AWS_PROFILE wins (docs/config.md), as the operator's deliberate choice of role.
    `core` is the botocore session to build on (`botocore_session()`; a new one by default).
    """
    chosen = None if os.environ.get("AWS_PROFILE") else profile
    core = core or botocore_session()
    if chosen is not None:
        # The profile first, then the loader for the data path that profile names (botocore's
        # order when it builds its own loader).
        core.set_config_variable("profile", chosen)
        core.register_component("data_loader", data_loader(core))
    session = boto3.Session(
        botocore_session=core,
        region_name=region or (stack.region if stack else None),
        profile_name=chosen,
    )
    try:
        # A profile missing from the AWS config is named here, as the setting that chose it:
        # boto3 does not read the profile itself when the session has its data loader already.
        core.get_scoped_config()
    except (ConfigParseError, InvalidConfigError):
        pass  # a broken AWS config file: check_aws_environment(session) names it
    except ProfileNotFound as exc:
        where = "aws:profile in the stack file" if chosen else "AWS_PROFILE"
        raise BadUsage(f"{exc}: set {where} to a profile in your AWS config") from None
    # boto3 appends its resource-model folder to the loader's search path for every session;
    # the loader is shared, so keep each folder once.
    paths = session._loader.search_paths
    paths[:] = dict.fromkeys(paths)
    return session


# One botocore data loader per process and data path. A fresh botocore session builds its own
# loader, and each loader parses a service's model (rds alone is ~1 MB of JSON) again; one
# command builds one session, but a process that runs several (the suite runs commands
# in-process) would pay the parse each time. The loader only reads the shipped model files.
_LOADERS: dict[str | None, botocore.loaders.Loader] = {}


def botocore_session() -> botocore.session.Session:
    """A new botocore session (its own config, credentials and events) with the shared loader
    (`data_loader(core)`)."""
    core = botocore.session.get_session()
    core.register_component("data_loader", data_loader(core))
    return core


def data_loader(core: botocore.session.Session) -> botocore.loaders.Loader:
    """The process's botocore data loader for the data path `core` reads (one per path), which
    parses botocore's JSON files into plain dicts (`PlainJSONFileLoader`)."""
    try:  # AWS_DATA_PATH or the config file's data_path, as botocore reads it
        data_path = core.get_config_variable("data_path")
    except (ConfigParseError, InvalidConfigError, ProfileNotFound):
        # a broken AWS config file or an unknown profile: session_for and
        # check_aws_environment(session) name them, exit 2
        data_path = os.environ.get("AWS_DATA_PATH")
    if data_path not in _LOADERS:
        loader = botocore.loaders.create_loader(data_path)
        loader.file_loader = PlainJSONFileLoader()
        _LOADERS[data_path] = loader
    return _LOADERS[data_path]


class PlainJSONFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's data files (service models, endpoints) parsed into plain dicts.

    botocore's own file loader builds an OrderedDict for every JSON object, which doubles the
    parse of its largest files (endpoints.json, the rds and ssm models: about 1 MB each, 0.02 s
    of a command's CPU together). A dict keeps the file's key order just the same.
    """

    def load_file(self, file_path: str) -> Any:
        """The data of `file_path` + `.json`, else + `.json.gz` (botocore's order), else None."""
        for ext, opener in ((".json", open), (".json.gz", gzip.open)):
            if os.path.isfile(file_path + ext):
                with opener(file_path + ext, "rb") as fh:
                    return json.loads(fh.read().decode("utf-8"))
        return None


def region_note(stack: StackConfig) -> str | None:
    """A warning when the shell's default region differs from the stack's region, else None."""
    env = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if env and env != stack.region:
        return (
            f"AWS_REGION={env} differs from stack {stack.stack}'s region {stack.region} "
            f"(aws:region in Pulumi.{stack.stack}.yaml); using {stack.region}"
        )
    return None


def make_client(session: boto3.Session, service: str, region: str | None = None) -> BaseClient:
    """A client of `service` with the retry config; `region` defaults to the session's."""
    return session.client(service, region_name=region, config=retry_config())


def pages(
    call: Callable[..., Mapping[str, Any]],
    params: Mapping[str, Any],
    token: str,
    *,
    within: str | None = None,
) -> Iterator[Mapping[str, Any]]:
    """Each page of a `Marker`/`NextToken`-paged call (`within`: the key the page sits under,
    e.g. EngineDefaults), without botocore's paginator, which loads its own model file first.

    Like the paginator, a token that comes back twice raises PaginationError instead of asking
    for the same page forever.
    """
    from botocore.exceptions import PaginationError

    request, seen = dict(params), set()
    while True:
        response = call(**request)
        page = response.get(within, {}) if within else response
        yield page
        following = page.get(token)
        if not following:
            return
        if following in seen:
            raise PaginationError(message=f"the endpoint sent {token} {following!r} twice")
        seen.add(following)
        request[token] = following


def is_read_only(operation: str) -> bool:
    """True for AWS API operations that change nothing (Describe*, List*, Get*)."""
    return operation.startswith(READ_ONLY_PREFIXES)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError (match on this, never on the message)."""
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def describe_error(exc: ClientError) -> str:
    """`AWS CreateDBSnapshot failed: DBSnapshotAlreadyExists: Cannot create the snapshot ...`."""
    err = exc.response.get("Error", {})
    text = (
        f"AWS {exc.operation_name} failed: {err.get('Code', 'Unknown')}: {err.get('Message', '')}"
    )
    return text.rstrip(": ")


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters safe to print or audit: credential values hidden by the same rule the
    infra diff and preview report use (dbplatform.manifest.redact)."""
    redacted: dict[str, Any] = redact_values(dict(params))
    return redacted


# --- -vv: botocore's DEBUG log without credential values (security review M-5) ----------------
# A name (JSON key, Python repr key, header, query parameter) and its value. Header names hold
# dashes (`X-Amz-Security-Token`); a value may be a bytes repr (`b'...'`: request headers).
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_JSON_PAIR = re.compile(r'(["\'])(' + _NAME + r')\1(\s*:\s*)(b?)(["\'])((?:(?!\5)[^\\]|\\.)*)\5')
# `name=value` and `name='value'` (a repr of keyword arguments; blanks after `=`, a b/u/r prefix,
# an escape, a quote not closed on the line): a quoted value is hidden within its quotes when
# they close before a separator; a value that opens a bracket is hidden to the end of the line;
# anything else up to the next `&` or blank is hidden whole (`'a'+'b'`, triple quotes).
_QUERY_PAIR = re.compile(
    r"(?<![^&?\s])(" + _NAME + r")=[ \t]*"
    r"(?:([bBrRuU]{0,2})(['\"])((?:(?!\3)[^\\\n]|\\.)*)(?:\3(?=[&\s,;)\]}]|$)|$)"
    r"|[(\[{][^\n]*|([^&\s]*))",
    re.M,
)
_XML_PAIR = re.compile(r"<([A-Za-z0-9_]+)>([^<]*)</\1>")
# `name:value` at the start of a line: the headers of SigV4's canonical request
# (`x-amz-security-token:...`) and of an HTTP message (`Authorization: AWS4-HMAC-SHA256 ...`); a
# name with nothing after it heads a value on the next line (botocore.auth's `Signature:\n...`).
_HEADER_LINE = re.compile(r"^([ \t]*" + _NAME + r")([ \t]*:[ \t]*)(\r?\n)?([^\r\n]*)", re.M)
# A bytes literal holding escapes (a response or request body, `b'{"SecretString":
# "{\\"password\\": ...}"}'`): the JSON inside is behind one more level of backslashes than the
# pair rules read, so the literal is read as its value, redacted, and shown as a literal again.
_ESCAPED_BYTES = re.compile(
    r"(?<![\w'\"])b(?:'(?=[^'\n]*\\)(?:[^'\\\n]|\\.)*'|\"(?=[^\"\n]*\\)(?:[^\"\\\n]|\\.)*\")"
)
# SigV4 signatures are named `Signature` (`Signature=...` in an Authorization header,
# `X-Amz-Signature` in a presigned URL), a name the property rule does not count as a credential:
# one lets anyone replay the request it signs until it expires.
_SIGNATURE_NAME = re.compile(r"signature$", re.I)
_MAX_LITERAL_DEPTH = 3


def redact_text(text: str, _depth: int = 0) -> str:
    """`text` with every value under a credential-like name (the same rule as `redact`) hidden:
    JSON/Python-repr pairs with str or bytes values, header lines, query-string pairs (RDS's
    query protocol, presigned URLs) and XML elements, also inside bytes literals with escapes;
    then the credential shapes of dbplatform.manifest.redact."""

    def literal(m: re.Match[str]) -> str:
        return _redact_literal(m.group(0), _depth)

    def pair(m: re.Match[str]) -> str:
        key = m.group(2)
        if not _is_secret_key(key):
            return m.group(0)
        value = f"{m.group(4)}{m.group(5)}{REDACTED}{m.group(5)}"
        return f"{m.group(1)}{key}{m.group(1)}{m.group(3)}{value}"

    def header(m: re.Match[str]) -> str:
        if not (m.group(4) and _is_secret_key(m.group(1).lstrip())):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}"

    def query(m: re.Match[str]) -> str:
        key = m.group(1)
        if not _is_secret_key(key.rsplit(".", 1)[-1]):
            return m.group(0)
        if m.group(3) is None:
            return f"{key}={REDACTED}"
        return f"{key}={m.group(3)}{REDACTED}{m.group(3)}"  # a b/u/r prefix dropped

    def xml(m: re.Match[str]) -> str:
        key = m.group(1)
        return f"<{key}>{REDACTED}</{key}>" if _is_secret_key(key) else m.group(0)

    if _depth < _MAX_LITERAL_DEPTH and "\\" in text:
        text = _ESCAPED_BYTES.sub(literal, text)
    text = _JSON_PAIR.sub(pair, text)
    text = _HEADER_LINE.sub(header, text)
    text = _XML_PAIR.sub(xml, _QUERY_PAIR.sub(query, text))
    return redact_shapes(text)


def _redact_literal(source: str, depth: int) -> str:
    """A bytes literal with its value redacted (`redact_text`), as a literal again."""
    import ast  # -vv only: the commands do not pay for it at start-up

    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return source
    if not isinstance(value, bytes):
        return source
    text = value.decode("utf-8", "surrogateescape")
    clean = redact_text(text, depth + 1)
    return source if clean == text else repr(clean.encode("utf-8", "surrogateescape"))


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    if _SIGNATURE_NAME.search(key):
        return True
    return bool(redact_values({key: "x"}, False).get(key) != "x")


class SecretLogFilter(logging.Filter):
    """Rewrites each log record with credential values hidden: dict arguments through `redact`
    (the one rule, dbplatform.manifest.redact), then the formatted text through `redact_text`
    (response bodies, serialized requests, signed headers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            args = tuple(redact_values(a) if isinstance(a, dict) else a for a in args)
        elif isinstance(args, dict):
            args = redact_values(args)
        try:
            text = str(record.msg) % args if args else str(record.msg)
        except (TypeError, ValueError):
            text = str(record.msg)
        record.msg, record.args = redact_text(text), None
        return True
