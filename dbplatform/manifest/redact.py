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
  (PagerDuty integration, Slack hooks), the value after a credential flag (`--password V`,
  `--secret-string V`, even when V starts with dashes or holds JSON), the rest of a
  `pulumi config set` line with `--secret`, a JSON document inside a string (decoded and walked
  by the same rule), a base64 token that decodes to any of these, a vendor's token by its
  prefix (Stripe `sk_live_`, GitHub `ghp_`/`github_pat_`, Slack `xoxb-`, Pulumi `pul-`, AWS
  access key ids `AKIA`/`ASIA`), the password glued to `-p` in a MySQL client's command, the
  value of a credential setting in `aws configure set`;
- it is too deep to read: JSON nested past the recursion limit, or a token URL-encoded more
  than three times (hidden whole, never a crash);
- it is a known secret (`scrub`), also in its URL-encoded (once or twice, either hex case),
  JSON-escaped, hex and base64-encoded (any byte alignment) forms.

Not caught (docs/ci.md, "Redaction"): a known secret split across lines, and a bare word in a
secret path under a reference name (`webhookSecretName: "team/xyz"` reads as the secret's name).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from policy.markers import SECRET

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
    r"|signing|hmac|(^|[-_.])(url|uri)$|(^|[a-z]|[-_.])(Url|Uri|URL|URI)$|webhook"
    r"|pgpass|(^|[-_.])(salt|otp)([-_.]|$)",
    re.I,
)
# `key`, `encryptionKey`, `api_key`, `SSH_KEY` (case-sensitive: AWS tag lists are {"Key": "Name",
# "Value": ...}, and their `Key` names a tag, it holds none).
_KEY_NAME = re.compile(r"^key$|[a-z0-9]Key$|[-_.](key|KEY)$")
# ...except names that classify one (the `dbplatform:secret-kind` tag, `authenticationType`): their
# values are a short vocabulary, and hiding them would hide which secret a change touches.
_CLASSIFIER_NAME = re.compile(r"(kind|type|mode|enabled)$", re.I)
# ...as long as the value is such a vocabulary word (`master`, `SecureString`, `PASSWORD`): a value
# with digits or punctuation under `passwordType` is treated as the credential it may be.
_VOCABULARY = re.compile(r"^[A-Za-z][A-Za-z_:-]{0,39}$")
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
# Names that hold the credential itself: an ARN- or id-shaped value there is still the value
# (`password: "pw-deadbeef1234"`), unless the name also says it is a reference
# (`passwordSecretArn`).
_VALUE_NAME = re.compile(
    r"passw(or)?d|passwd|pwd|(^|[-_.])pass($|[-_.])|secret(string|value)?$|token$|(?-i:^key$)",
    re.I,
)
# A `value` whose sibling names it (SSM `{"type": "SecureString", "value": ...}`, container
# environments `[{"name": "DB_PASSWORD", "value": ...}]`): hidden when the sibling is
# credential-like.
_VALUE_KEYS = ("value", "Value")
_NAMING_KEYS = ("name", "Name", "key", "Key", "type", "Type", "ParameterKey", "ParameterName")
_SECRET_TYPES = {"SecureString", "SecretString", "SECRET"}
# Secrets Manager / SSM hierarchy: lowercase path segments (the names this program gives secrets).
_HIERARCHICAL = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.@-]*)+$")

# Value shapes that are credentials wherever they appear.
# RFC 3986 userinfo: scheme://user:password@host. The password runs to the LAST `@` of the URL (a
# password may hold an unencoded `@` or `/`). Scheme (RFC 3986 3.1, bounded here), user and
# password are bounded so a text with many `a.` or `x://y:` parts is scanned in linear time
# (security review S-8: the unbounded scheme was quadratic); 128 is the longest RDS master password
# (RDS API reference, CreateDBInstance MasterUserPassword: "from 8 to 128 characters").
_USERINFO = re.compile(
    r"(?P<head>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,30}://[^\s:/@'\"]{0,128}:)"
    r"(?P<secret>[^\s'\"]{1,128}?)(?=@[^\s@'\"]*(?:[\s'\"]|$))",
    re.I,
)
# `name=value`, `name: value`, `"name": "value"`: the name ENDS with a credential word, whatever
# precedes it (`PGPASSWORD`, `DB_PASSWORD`, `MasterUserPassword`, `aws_secret_access_key`).
_SECRET_WORD = (
    r"(?:[\w-]*?(?:passw(?:or)?d|pwd|secret(?:[-_]?access[-_]?key)?|token|api[-_]?key"
    r"|access[-_]?key|signature|client[-_]?secret)|(?:[\w-]*[_.-])?(?:pass|sig|auth))"
)
_VALUE = (
    # a bytes repr (`'X-Amz-Security-Token': b'...'`) is the quoted value behind its `b`
    r"(?:(?P<bytes>(?<![\w])b)?(?P<quote>['\"])(?P<quoted>(?:\\.|(?!(?P=quote))[^\\\n])*)(?P=quote)"
    r"|(?P<secret>[^\s&;'\",}]+))"
)
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![\w-])"
    + _SECRET_WORD
    + r"['\"]?(?:\s*(?:=|&#61;)\s*|\s*:\s+|:(?=['\"])))"
    + _VALUE,
    re.I,
)
# `password:value` (YAML without the space) and `--password value` / `--master-user-password=v`.
_PASSWORD_COLON = re.compile(
    r"(?P<head>(?<![\w-])[\w-]*?(?:passw(?:or)?d|pwd)['\"]?:)" + _VALUE, re.I
)
# A backslash that continues a shell command on the next line (either line ending).
_CONTINUATION = r"[ \t]*\\\r?\n[ \t]*"
# A command-line flag that takes a credential (`--password V`, `--master-user-password=V`,
# `--secret-string V`, `--client-secret V`, `--api_key V`, `--passphrase V`, `--db-pass V`).
# Switches that take no value are not such flags: `--no-password`, `--skip-password`, the RDS
# CLI's `--manage-master-user-password` and `--rotate-master-user-password` (with
# `--no-manage-master-user-password` the AWS CLI requires `--master-user-password V` next, whose
# V must stay hidden), ansible's `--ask-pass`, `--ask-vault-pass`. A bare `--secret` is read as
# one, on the safe side, though in this project's commands it names a secret (`--secret NAME`
# reads `--secret [secret]` in redacted text, docs/ci.md).
_CREDENTIAL_FLAG = (
    r"--(?!(?:no|skip|ask|two)-)(?!(?:manage|rotate)-master-user-password(?![\w-]))"
    r"(?:[\w-]*?(?:passw(?:or)?d|pwd|secret|secret[-_]?(?:string|binary|key)|token"
    r"|api[-_]?key|access[-_]?key|passphrase)|(?:[\w-]*-)?pass)"
    # the value is on the same line, or the next one after a shell line continuation
    r"(?:" + _CONTINUATION + r"|[ \t]+|=)"
)
_FLAG_HEAD = r"(?<![\w-])" + _CREDENTIAL_FLAG
_FLAG = re.compile(
    r"(?P<head>" + _FLAG_HEAD + r")"
    # The word after such a flag is its value even when it looks like a flag: a password may
    # start with dashes (GNU getopt hands `--password --x2` the value `--x2`), and nothing tells
    # the two apart. Credential flags in between are hidden with it (`--password --token V` and
    # `--password --ends-in-pwd --next` both read `--password [secret]`); psql's prompting
    # `--password --host db` reads `--password [secret] db`: a flag's name hidden costs less
    # than a password shown.
    r"(?P<chain>(?:" + _CREDENTIAL_FLAG + r")*)"
    # A command line's word: quoted, or up to the next space (a backslash escapes a space).
    r"(?:(?P<quote>['\"])(?P<quoted>(?:\\.|(?!(?P=quote))[^\\\n])*)(?P=quote)"
    r"|(?P<secret>(?:\\[ \t]|\S)+))",
    re.I,
)
# `pulumi config set --secret KEY VALUE`, `pulumi config set-all --secret KEY=VALUE` (Pulumi CLI
# reference: `--secret` may come anywhere, with `--path`, `--stack`, `--type`, `--` ...): when
# `--secret` is among its words, everything after `set` to the end of the command line (`\`
# continuations included) is hidden, the key with the value. Reading the words the way the CLI
# does (quotes, glued pieces, `#`, `;`) was tried and leaked in each review; this rule is
# simple enough to be right. Up to twelve words between `config` and `set` (`config --stack
# prod set`), bounded so the scan stays linear; `set-credentials` and the like are other
# commands. No JSON document starts on the rest of such a line (`_redact_embedded_json`): a value
# may hold `["x"]`.
_SEP = r"(?:[ \t]|\\\r?\n)+"  # words are separated by blanks and `\` continuations
_PULUMI_CONFIG_SET = re.compile(
    r"(?P<head>\bconfig(?:"
    + _SEP
    + r"(?:[^\s\\]|\\[^\r\n])+){0,12}?"
    + _SEP
    + r"set(?:-all)?(?![\w-]))"
    r"(?P<rest>(?:[^\r\n\\]++|\r(?!\n)|\\\r?\n|\\.?)*+)"
)
_SECRET_SWITCH = re.compile(r"(?<![\w-])--secret(?![\w-])", re.I)


def _redact_config_set(match: re.Match[str]) -> str:
    if _SECRET_SWITCH.search(match.group(0)):
        return f"{match['head']} {REDACTED}"
    return match.group(0)


# RFC 6750 bearer tokens (the scheme is case-insensitive, RFC 7235 2.1) and RFC 7617 basic
# credentials in an Authorization value.
_AUTH_SCHEME = re.compile(
    r"(?P<head>\b(?:(?i:bearer)|Basic|Token|Digest)\s+)(?P<secret>[^\s'\",]{6,})"
)
# A token holding percent-encoded characters (a fully URL-encoded DSN): decoded and checked.
# Anchored at a token's start so each token is scanned once.
_PERCENT_TOKEN = re.compile(r"(?<![^\s'\"])[^\s'\"]*%[0-9A-Fa-f]{2}[^\s'\"]*")
# Webhook URLs whose path carries the key (PagerDuty integration key: "Events API v1"
# https://events.pagerduty.com/integration/<key>/enqueue; Slack incoming webhooks
# https://hooks.slack.com/services/T.../B.../<secret>).
_PATH_KEY = re.compile(
    r"(?P<head>/integration/)(?P<secret>[^/\s'\"?#]+)|(?P<head2>hooks\.slack\.com/services/)"
    r"(?P<secret2>[^\s'\"?#]+)",
    re.I,
)
# Credentials known by their issuer's prefix, under any name or none (the issuers document these
# prefixes so that scanners find leaked keys): Stripe secret and restricted keys and webhook signing
# secrets, GitHub's classic, OAuth, app and fine-grained tokens, Slack's tokens, Pulumi access
# tokens, and AWS access key ids (long-term `AKIA`, temporary `ASIA`: IAM User Guide, "Unique ID
# prefixes"). The prefix stays readable, it says which kind of key was there; publishable keys
# (`pk_live_`) and AWS ids that name a principal (`AIDA`, `AROA`) are not credentials.
_VENDOR_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?P<head>(?:sk|rk)_(?:live|test)_|whsec_|gh[pousr]_|github_pat_|xox[abeoprs]-)"
    r"(?P<secret>[A-Za-z0-9_-]{10,})"
    r"|(?P<head2>pul-)(?P<secret2>[0-9a-f]{40})(?![A-Za-z0-9])"
    r"|(?P<head3>A[KS]IA)(?P<secret3>[A-Z0-9]{16})(?![A-Za-z0-9])"
    r")"
)
# MySQL and MariaDB clients take the password glued to `-p` (`mysql -uroot -pS3cret db`; with a
# blank, `-p db` prompts and `db` is the database). Elsewhere a glued `-p` is a port (`psql
# -p5432`, `ssh -p22`) or switches (`cp -pr`), so it is hidden only after such a client's name,
# up to the end of that command (a line end, `;`, `|`, `&`).
_MYSQL_CLIENT = re.compile(r"mysql|mariadb")
_GLUED_PASSWORD = re.compile(
    r"(?P<command>(?<![\w.-])(?:mysql(?:dump|admin|import|show|check|slap|binlog|pump|sh)?"
    r"|mariadb(?:-?(?:dump|admin|import|show|check|slap|binlog))?)(?![\w.-]))"
    r"|(?P<end>[\r\n;|&])"
    r"|(?P<flag>(?<![\w-])-p(?=\S))"
)
# The value glued to it: a command line's word (`_FLAG`'s grammar).
_GLUED_VALUE = re.compile(
    r"(?P<quote>['\"])(?P<quoted>(?:\\.|(?!(?P=quote))[^\\\n])*)(?P=quote)|(?:\\[ \t]|\S)+"
)
# `aws configure set aws_secret_access_key V` (`aws_session_token`, `profile.p.aws_...`, with
# `--profile P` before or after `set`): the setting's name says whether the next word is a
# credential; `aws configure set region us-east-1` stays readable.
_CONFIGURE_OPTION = r"(?:[ \t]+--[\w-]+[ \t]+[^\s-]\S*){0,4}"
_CONFIGURE_SET = re.compile(
    r"(?P<head>(?<![\w-])configure"
    + _CONFIGURE_OPTION
    + r"[ \t]+set"
    + _CONFIGURE_OPTION
    + r"[ \t]+(?P<name>[\w.-]+)[ \t]+)"
    r"(?:(?P<quote>['\"])(?P<quoted>(?:\\.|(?!(?P=quote))[^\\\n])*)(?P=quote)"
    r"|(?P<secret>(?:\\[ \t]|\S)+))"
)


def _hide_vendor_token(match: re.Match[str]) -> str:
    return (match["head"] or match["head2"] or match["head3"]) + REDACTED


def _hide_glued_passwords(text: str) -> str:
    """`-pVALUE` hidden inside a MySQL/MariaDB client's command (`_GLUED_PASSWORD`)."""
    if "-p" not in text or not _MYSQL_CLIENT.search(text):
        return text
    parts: list[str] = []
    pos = scan = 0
    inside = False
    while (match := _GLUED_PASSWORD.search(text, scan)) is not None:
        scan = match.end()
        if match["command"]:
            inside = True
        elif match["end"]:
            inside = False
        elif inside:
            value = _GLUED_VALUE.match(text, scan)  # `-p` is followed by a non-blank
            if value is None:
                continue
            quote_char = value["quote"] or ""
            parts.append(text[pos:scan] + quote_char + REDACTED + quote_char)
            pos = scan = value.end()
    parts.append(text[pos:])
    return "".join(parts)


def _hide_configured_credential(match: re.Match[str]) -> str:
    if not is_credential_name(match["name"].rsplit(".", 1)[-1]):
        return match.group(0)
    return _keep_quote(match)


_BASE64_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{12,}={0,2}(?![A-Za-z0-9+/=_-])")
_MIN_SECRET_LEN = 4
_MAX_DECODE_ROUNDS = 3


@functools.lru_cache(maxsize=4096)
def is_credential_name(name: str) -> bool:
    """True when a value under this property name may be a credential."""
    credential = bool(_CREDENTIAL_NAME.search(name) or _KEY_NAME.search(name))
    return credential and not _CLASSIFIER_NAME.search(name)


def is_pulumi_secret(value: object) -> bool:
    """True for a value Pulumi serialized as secret."""
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE


def is_reference(value: str) -> bool:
    """True for an ARN or an AWS resource id: it names a credential, it is not one."""
    return bool(_REFERENCE_VALUE.match(value)) and not _VENDOR_TOKEN.search(value)


def redact(value: Any, sensitive: bool = False) -> Any:
    """Copy of `value` with credentials replaced by REDACTED (the rule in the module docstring).

    `sensitive`: `value` itself sits under a credential-like name.
    """
    if is_pulumi_secret(value):
        return REDACTED
    if isinstance(value, dict):
        named_secret = _names_a_secret(value)
        return {
            k: REDACTED
            if named_secret and k in _VALUE_KEYS and not isinstance(v, _HARMLESS)
            else _redact_item(str(k), v, sensitive)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v, sensitive) for v in value]
    if isinstance(value, _HARMLESS):
        return value
    if not isinstance(value, str):
        return REDACTED if sensitive else value
    if is_reference(value):
        return value
    return REDACTED if sensitive else redact_text(value)


def _names_a_secret(doc: dict[Any, Any]) -> bool:
    """A `{"name": "DB_PASSWORD", "value": ...}` / `{"type": "SecureString", "value": ...}` pair."""
    if not any(k in doc for k in _VALUE_KEYS):
        return False
    for key in _NAMING_KEYS:
        sibling = doc.get(key)
        if isinstance(sibling, str) and (sibling in _SECRET_TYPES or is_credential_name(sibling)):
            return True
    return False


def _redact_item(name: str, value: Any, sensitive: bool) -> Any:
    # A hierarchical secret name (`dbplatform/prod/db/master`) under a name that says it is a
    # reference (`SecretId`, `masterSecretName`) names the secret; a bare word there may be the
    # value itself (the review found `webhookSecretName: "<the value>"`).
    if isinstance(value, str):
        if _REFERENCE_NAME.search(name):
            if _HIERARCHICAL.match(value):
                return value
        elif _VALUE_NAME.search(name) and not _CLASSIFIER_NAME.search(name):
            # `password: "arn:aws:..."` is still the password (security review S-4).
            return REDACTED
        classifier = _CLASSIFIER_NAME.search(name) and _CREDENTIAL_NAME.search(name)
        if classifier and not _VOCABULARY.match(value):
            return REDACTED
    return redact(value, sensitive or is_credential_name(name))


def redact_text(text: str) -> str:
    """`text` with every credential-shaped part replaced (a JSON document inside is walked)."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') and len(stripped) > 1:
        try:
            doc = json.loads(stripped)
        except (ValueError, RecursionError):
            pass
        else:
            # A JSON string holding JSON (double encoding) is walked the same way.
            try:
                clean = redact_text(doc) if isinstance(doc, str) else redact(doc)
            except RecursionError:  # nested too deep to walk: hidden whole
                return REDACTED
            # Unchanged documents (key policies, parameter lists) keep their exact text.
            return text if clean == doc else json.dumps(clean, sort_keys=True)
    return _redact_embedded_json(text)


# A JSON document starts at one of these; a failed decode is retried at the next one, and the
# number of attempts per text is bounded so a text of many `{` stays linear.
# A `[` glued to a word or a closing bracket (`subscriptions[0]`, `f()[1]`) is an index, not a
# document: splitting the text there would hide a flag from its value. A `{` always starts one
# (`[INFO]{"SecretString": ...}`).
_JSON_START = re.compile(r"\{|(?<![\w\])])\[")
_MAX_JSON_ATTEMPTS = 256
_DECODER = json.JSONDecoder()


def _redact_embedded_json(text: str) -> str:
    """JSON documents inside a longer text (`body: {"SecretString": ...}`) decoded and walked
    (json.JSONDecoder.raw_decode at each `{`/`[`); the text around them by the shape rules.

    Two shapes own a document that starts inside them: a credential flag's value
    (`--secret-string {...}`, `--password 'ab{...}cd'`: the value is hidden from its start to
    the end of the document and of the word after it) and a `pulumi config set` command with
    `--secret` (no document starts on the rest of its line: the rule hides it). A document that
    starts first is walked whole, whatever its strings quote. Each shape is searched for from
    where the text was left off, so one quoted inside an earlier document neither hides nor
    swallows a later one, and the scan stays linear.
    """
    parts: list[str] = []
    pos = 0
    attempts = 0
    flags = _NextMatch(_FLAG, text)
    commands = _NextMatch(_PULUMI_CONFIG_SET, text, lambda m: bool(_SECRET_SWITCH.search(m[0])))
    for match in _JSON_START.finditer(text):
        start = match.start()
        if start < pos:
            continue
        command = commands.at_or_after(pos, start)
        if command is not None and command.start() < start < command.end():
            continue
        attempts += 1
        if attempts > _MAX_JSON_ATTEMPTS:
            break
        try:
            doc, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        if not isinstance(doc, (dict, list)) or not doc:
            continue
        flag = flags.at_or_after(pos, start)
        if flag is not None and flag.end("chain") <= start < flag.end():
            value = flag.end("chain")
            quote_char = flag["quote"] or ""
            hidden_to = max(flag.end(), _word_end(text, end))
            if _CREDENTIAL_NAME_AT_END.search(text[max(end, hidden_to - 64) : hidden_to]):
                # the word hidden ends in a credential's name (`..."password":`, `...Bearer`):
                # its value, the next word, goes with it (a document there to its end), and the
                # one after while the hidden one could itself be a name (`token password: V`);
                # a credential flag is left for its own rule
                hidden_to = _hide_values_after_a_name(text, hidden_to)
            parts.append(_redact_shapes(text[pos:value]) + quote_char + REDACTED + quote_char)
            pos = hidden_to
            continue
        try:
            clean = redact(doc)
        except RecursionError:  # nested too deep to walk: hidden whole
            clean = REDACTED
        parts.append(_redact_shapes(text[pos:start]))
        parts.append(text[start:end] if clean == doc else json.dumps(clean, sort_keys=True))
        pos = end
    parts.append(_redact_shapes(text[pos:]))
    return "".join(parts)


def _hide_values_after_a_name(text: str, pos: int) -> int:
    """Where the value(s) after a credential's name ending at `pos` end (see the caller)."""
    for _ in range(4):
        following = _NEXT_WORD.match(text, pos)
        if following is None:
            break
        word_start = following.end() - len(following[0].lstrip(" \t:="))
        word = text[word_start : following.end()]
        if not word or _FLAG.match(text, word_start):
            break
        if word[0] in "{[":
            try:
                _, doc_end = _DECODER.raw_decode(text, word_start)
            except (ValueError, RecursionError):
                pass
            else:
                return _word_end(text, doc_end)
        pos = following.end()
        if not _CREDENTIAL_NAME_AT_END.search(word[-64:]):
            break
    return pos


def _word_end(text: str, pos: int) -> int:
    """The end of the word a document ending at `pos` sits in (`_FLAG`'s unquoted grammar), or
    the start of a credential flag glued to it (`{...}--password V`), left for its own rule."""
    end = _WORD_REST.match(text, pos).end()  # type: ignore[union-attr]
    glued = _GLUED_FLAG.search(text, pos, min(len(text), end + 8))
    return glued.start() if glued is not None and glued.start() < end else end


_GLUED_FLAG = re.compile(_FLAG_HEAD, re.I)
# The rest of a command line's word after a document inside it (`_FLAG`'s unquoted grammar).
_WORD_REST = re.compile(r"(?:\\[ \t]|\S)*")
# A word that ends in a credential's name or an auth scheme, and the word after it.
_CREDENTIAL_NAME_AT_END = re.compile(
    r"(?:" + _SECRET_WORD + r"|passw(?:or)?d|pwd)['\"]?\s*[:=]?\Z|(?:bearer|basic|token|digest)\Z",
    re.I,
)
_NEXT_WORD = re.compile(r"[ \t]*[:=]?[ \t]*(?:\"[^\"\n]*\"|'[^'\n]*'|\S*)")


class _NextMatch:
    """The first match of `pattern` (that `keep` accepts) starting at or after a position and
    ending after another, both only growing: searched again only when they pass the match held,
    so all the searches of one text together read it about once."""

    def __init__(
        self,
        pattern: re.Pattern[str],
        text: str,
        keep: Callable[[re.Match[str]], bool] = lambda m: True,
    ) -> None:
        self.pattern, self.text, self.keep = pattern, text, keep
        self.match = self._search(0)

    def _search(self, pos: int) -> re.Match[str] | None:
        while (found := self.pattern.search(self.text, pos)) is not None and not self.keep(found):
            pos = max(found.end(), found.start() + 1)
        return found

    def at_or_after(self, pos: int, until: int) -> re.Match[str] | None:
        """The first match starting at or after `pos` that does not end by `until`."""
        if self.match is not None and self.match.start() < pos:
            self.match = self._search(pos)
        while self.match is not None and self.match.end() <= until:
            self.match = self._search(max(self.match.end(), self.match.start() + 1))
        return self.match


def _redact_shapes(text: str) -> str:
    if not text:
        return text
    return _redact_shapes_without_percent(_PERCENT_TOKEN.sub(_redact_percent_encoded, text))


def _redact_shapes_without_percent(text: str) -> str:
    text = _USERINFO.sub(lambda m: m["head"] + REDACTED, text)
    text = _PULUMI_CONFIG_SET.sub(_redact_config_set, text)
    text = _FLAG.sub(_keep_quote, text)
    text = _KEY_VALUE.sub(_keep_quote, text)
    text = _PASSWORD_COLON.sub(_keep_quote, text)
    text = _AUTH_SCHEME.sub(lambda m: m["head"] + REDACTED, text)
    text = _PATH_KEY.sub(lambda m: (m["head"] or m["head2"]) + REDACTED, text)
    text = _CONFIGURE_SET.sub(_hide_configured_credential, text)
    text = _hide_glued_passwords(text)
    text = _VENDOR_TOKEN.sub(_hide_vendor_token, text)
    return _BASE64_TOKEN.sub(_redact_base64, text)


def _keep_quote(match: re.Match[str]) -> str:
    quote_char = match["quote"] or ""
    prefix = match.groupdict().get("bytes") or ""
    return match["head"] + prefix + quote_char + REDACTED + quote_char


def _redact_percent_encoded(match: re.Match[str]) -> str:
    """A token hidden when any of its decoded forms (URL-encoded once, twice, three times) holds
    a credential shape; one encoded more often than that is hidden whole (fail closed)."""
    token = decoded = match.group(0)
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded, encoded = unquote(decoded), decoded
        if decoded == encoded:
            return token
        if _redact_shapes_without_percent(decoded) != decoded:
            return REDACTED
    return REDACTED if unquote(decoded) != decoded else token


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
    """A known secret as it can appear in text: as is, URL-encoded (once or twice, upper- or
    lowercase hex), JSON-escaped (with or without `\\u` escapes), hex, and base64 (standard and
    URL, at each of the three byte alignments so it is found inside a longer encoded text)."""
    raw = secret.encode("utf-8")
    url = {quote(secret, safe=""), quote_plus(secret), quote(secret)}
    url |= {quote(u, safe="") for u in set(url)}
    url |= {re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), u) for u in set(url)}
    forms = {secret, *url, raw.hex(), raw.hex().upper()}
    forms |= {json.dumps(secret, ensure_ascii=a)[1:-1] for a in (True, False)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(raw).decode("ascii")
        forms.update({encoded, encoded.rstrip("=")})
        for offset in (1, 2):
            # The characters that depend on the secret's bytes alone, after `offset` other bytes.
            shifted = encode(b"\0" * offset + raw).decode("ascii")
            forms.add(shifted[(8 * offset + 5) // 6 : ((offset + len(raw)) * 8) // 6])
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
