"""Render a parsed preview as a pull-request comment that puts danger first and always fits GitHub.

The provenance line (commit, run, time, Pulumi Cloud), the verdict (which also names what the
offline infra diff and guardrails flag), the warnings (stateful resources deleted or replaced,
protections weakened) and the operation counts are always kept;
policy violations, errors, the table of changes (dangerous operations first across all
components, repeated changes grouped by type and property set), the offline checks and the
collapsed per-resource details fill the remaining room in that order, and a closing note links
the full report when something was left out. A stack with no change gets one line. Secrets are
hidden and the account ids in ARNs masked (`arn:aws:sns:us-east-1:************:oncall`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dbplatform.manifest.redact import MASKED_ACCOUNT, mask_accounts, redact_text
from dbplatform.manifest.render import _short_type as short_type
from dbplatform.preview.digest import Diagnostic, Preview, ResourceChange, op_rank
from dbplatform.preview.offline import (
    GUARDRAILS_TITLE,
    INFRA_DIFF_TITLE,
    Offline,
    plural,
    strip_infra_diff_marker,
)
from dbplatform.preview.weakened import Weakening

# GitHub refuses a comment body over 65,536 characters ("Body is too long (maximum is 65536
# characters)"); one below it leaves no doubt about how the count ends.
GITHUB_COMMENT_LIMIT = 65_535
ALLOW_LABEL = "allow-destructive"
# The command that writes the untrimmed report, as the closing note names it.
FULL_REPORT_COMMAND = "dbplatform preview-report --full"
# Room kept back for the closing note, whatever else is cut.
_FOOTER_RESERVE = 400
_MAX_PROPERTIES = 20
_MAX_CELL_PROPERTIES = 6
_MAX_MESSAGE = 600
_MAX_NAMES = 5
_MAX_OFFLINE = 12_000


@dataclass(frozen=True)
class Context:
    """Where a report comes from and what else CI ran; every field optional."""

    commit: str | None = None
    """The commit previewed (the pull request's head, or the merge commit)."""
    run_url: str | None = None
    """The workflow run that produced the report."""
    time: str | None = None
    """When the preview ran (UTC, as CI gives it)."""
    cloud_url: str | None = None
    """The update's page in Pulumi Cloud, when the stack lives there."""
    full_report_url: str | None = None
    """Where the untrimmed report can be read (the run's artifacts)."""
    guardrails: str | None = None
    """Output of the offline guardrails."""
    infra_diff: str | None = None
    """The offline infra diff against the base branch (Markdown)."""


def marker(stack: str) -> str:
    """Hidden line naming the stack a comment is for, so CI edits that comment, never adds one."""
    return f"<!-- dbplatform-preview:{stack} -->"


def width(text: str) -> int:
    """Length as GitHub counts it (UTF-16 code units), so characters outside the BMP count twice."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


@dataclass(frozen=True)
class Report:
    """The rendered comment and what was left out of it."""

    markdown: str
    verdict: str
    """The verdict as one plain-text line (for logs)."""
    omitted: int
    """Number of optional entries (table rows, details, messages) left out to fit the limit."""


class _Page:
    """Appends text while tracking its width against a limit."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.used = 0
        self.limit = limit

    def room(self) -> int:
        return self.limit - self.used

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.used += width(text)

    def text(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True)
class _Section:
    kind: str
    """What an item is, for the note on omissions ("table rows")."""
    header: str
    items: Sequence[str]
    closer: str


def render(
    preview: Preview,
    *,
    allow_destructive: bool,
    limit: int = GITHUB_COMMENT_LIMIT,
    context: Context | None = None,
) -> Report:
    """The comment for `preview`, never wider than `limit`."""
    ctx = context or Context()
    offline = Offline.read(ctx.infra_diff, ctx.guardrails)
    verdict_md, verdict_plain = _verdict(preview, allow_destructive, offline)
    if _nothing_to_say(preview) and not offline.flagged:
        line = _masked_markdown(f"{marker(preview.stack)}\n{verdict_md}{_provenance(ctx, ' · ')}\n")
        return Report(
            markdown=_truncate(line, limit), verdict=mask_accounts(verdict_plain), omitted=0
        )
    page = _Page(limit - _FOOTER_RESERVE)
    page.add(f"{marker(preview.stack)}\n### Pulumi preview of {_code(preview.stack)}\n\n")
    provenance = _provenance(ctx, "")
    if provenance:
        page.add(f"<sub>{provenance}</sub>\n\n")
    page.add(verdict_md + "\n\n")
    counts = _counts_table(preview)
    omitted_warnings = _add_warnings(page, preview, allow_destructive, reserve=width(counts))
    page.add(counts)

    omitted: dict[str, int] = {}
    if omitted_warnings:
        omitted["stateful-resource warnings"] = omitted_warnings
    stopped = False
    for section in _optional_sections(preview, ctx, offline):
        # Once something does not fit, later sections are left out whole: a reader sees a prefix
        # of the report in priority order, never a gap in the middle.
        kept = 0 if stopped else _add_section(page, section)
        if kept < len(section.items):
            omitted[section.kind] = omitted.get(section.kind, 0) + len(section.items) - kept
            stopped = True

    page.limit += _FOOTER_RESERVE
    page.add(_footer(preview, omitted, ctx))
    # Every value went through a helper that masks account ids; this catches any other path.
    text = _masked_markdown(page.text())
    if width(text) > limit:  # only reachable with a limit too small for the verdict itself
        text = _truncate(text, limit)
    return Report(
        markdown=text, verdict=mask_accounts(verdict_plain), omitted=sum(omitted.values())
    )


# --- provenance and verdict ----------------------------------------------------------------


def _provenance(ctx: Context, lead: str) -> str:
    parts = []
    if ctx.commit:
        parts.append(f"commit {_code(ctx.commit[:12])}")
    if ctx.run_url:
        parts.append(f"[workflow run]({_url(ctx.run_url)})")
    if ctx.time:
        parts.append(_text(ctx.time))
    if ctx.cloud_url:
        parts.append(f"[Pulumi Cloud]({_url(ctx.cloud_url)})")
    return lead + " · ".join(parts) if parts else ""


def _nothing_to_say(preview: Preview) -> bool:
    """No change, no diagnostic worth a look: the comment is one line."""
    return not (
        preview.changed
        or preview.weakened
        or preview.policy_violations
        or any(d.severity in ("error", "warning") for d in preview.diagnostics)
    )


def _summary(preview: Preview) -> str:
    parts = [f"{n:,} to {op}" for op, n in preview.counts if op not in ("same", "read", "refresh")]
    return ", ".join(parts) if parts else "no changes"


def _verdict(preview: Preview, allow_destructive: bool, offline: Offline) -> tuple[str, str]:
    # The cloud preview may find nothing wrong where the offline checks do (they compare the
    # branch with its base, not with what is deployed): a green tick would leave their finding in
    # a collapsed section, so the verdict names it.
    found = ("; ".join(offline.findings("`pulumi up`")), "; ".join(offline.findings("pulumi up")))
    md, plain = _base_verdict(preview, allow_destructive, found)
    weak = preview.weakened
    if weak:
        what = plural(len(weak), "protection")
        plain += f" {what} weakened."
        md += f" **{what} weakened** (see below)."
    blocked = preview.blocked_by_protect
    if allow_destructive and blocked:
        names = ", ".join(r.name for r in blocked[:5])
        plain += f" The update will FAIL: {names} protected."
        md += (
            f" **The update will fail:** {plural(len(blocked), 'resource')} "
            f"({', '.join(_code(r.name) for r in blocked[:5])}) "
            f"{'is' if len(blocked) == 1 else 'are'} `protect`ed; lift `protect` in a "
            "separate, reviewed change first."
        )
    return md, plain


def _base_verdict(
    preview: Preview, allow_destructive: bool, offline: tuple[str, str]
) -> tuple[str, str]:
    """The verdict; `offline` is what the offline checks flag (Markdown, plain), or empty."""
    danger = preview.destructive
    mandatory = [d for d in preview.policy_violations if d.severity == "error"]
    problems = len(preview.errors) + len(mandatory)
    extra = f" The preview also reported {plural(problems, 'error')}." if problems else ""
    stack = preview.stack
    if preview.weakened and not danger and not allow_destructive:
        n = plural(len(preview.weakened), "protection")
        plain = (
            f"BLOCKED: {n} of stateful resources weakened in {stack}; this needs the "
            f"'{ALLOW_LABEL}' label from a repository owner."
        )
        md = (
            f"⛔ **Blocked: the change weakens the protection of stateful resources in "
            f"{_code(stack)}.** Merging needs the {_code(ALLOW_LABEL)} label from a repository "
            f"owner.{extra}"
        )
    elif danger and not allow_destructive:
        plain = (
            f"BLOCKED: {plural(len(danger), 'stateful resource')} would be deleted or replaced "
            f"in {stack}; this needs the '{ALLOW_LABEL}' label from a repository owner."
        )
        md = (
            f"⛔ **Blocked: {plural(len(danger), 'stateful resource')} would be deleted or "
            f"replaced in {_code(stack)}.** Merging needs the {_code(ALLOW_LABEL)} label from a "
            f"repository owner.{extra}"
        )
    elif problems:
        approved = (
            f" Destructive change approved ({ALLOW_LABEL}): "
            f"{plural(len(danger), 'stateful resource')} will be deleted or replaced."
            if danger
            else ""
        )
        plain = f"FAILED: the preview of {stack} reported {plural(problems, 'error')}.{approved}"
        md = (
            f"❌ **The preview of {_code(stack)} reported {plural(problems, 'error')}** "
            f"({_summary(preview)}); see below.{approved}"
        )
    elif danger:
        plain = (
            f"APPROVED DESTRUCTIVE: {plural(len(danger), 'stateful resource')} will be deleted "
            f"or replaced in {stack} ({ALLOW_LABEL})."
        )
        md = (
            f"⚠️ **Destructive change approved ({_code(ALLOW_LABEL)}): "
            f"{plural(len(danger), 'stateful resource')} will be deleted or replaced in "
            f"{_code(stack)}.**"
        )
    else:
        return _calm_verdict(preview, offline)
    md_found, plain_found = offline
    if md_found:
        md += f" Also, **{md_found}**."
        plain += f" Also, {plain_found}."
    return md, plain


def _calm_verdict(preview: Preview, offline: tuple[str, str]) -> tuple[str, str]:
    """The verdict when the cloud preview deletes, replaces or weakens nothing and reports no
    error: a green tick, unless an offline check flags something."""
    stack, md_found, plain_found = preview.stack, *offline
    if preview.changed and md_found:
        plain = (
            f"WARNING: {_summary(preview)} in {stack}: the cloud preview deletes or replaces no "
            f"stateful resource, but {plain_found}."
        )
        md = (
            f"⚠️ **{_summary(preview).capitalize()} in {_code(stack)}**: the cloud preview "
            f"deletes or replaces no stateful resource, but **{md_found}**."
        )
    elif preview.changed:
        plain = f"OK: {_summary(preview)} in {stack}; no stateful resource deleted or replaced."
        md = (
            f"✅ **{_summary(preview).capitalize()} in {_code(stack)}**; no stateful resource is "
            "deleted or replaced."
        )
    elif md_found:
        plain = f"WARNING: no changes in {stack} in the cloud preview, but {plain_found}."
        md = f"⚠️ **No changes in {_code(stack)}** in the cloud preview, but **{md_found}**."
    else:
        plain = f"OK: no changes in {stack}."
        md = f"✅ **No changes in {_code(stack)}.**"
    return md, plain


def _warning_line(r: ResourceChange) -> str:
    line = f"> - **{r.op}** {_code(r.name)} ({_code(short_type(r.type))}: {_text(r.what_is_lost)})"
    if r.component:
        line += f" in {_text(r.component)}"
    if r.op == "replace":
        if r.replaced_because:
            line += " — forced by " + ", ".join(_code(p) for p in r.replaced_because)
        else:
            line += " — the provider did not name the property forcing it"
    notes = []
    if r.protected:
        notes.append("protected: `pulumi up` fails until `protect` is lifted")
    if r.retain_on_delete:
        notes.append("retainOnDelete: the old resource stays in AWS")
    if notes:
        line += "; " + "; ".join(notes)
    return line + "\n"


def _weakening_line(w: Weakening) -> str:
    return (
        f"> - {_code(w.name)} ({_code(short_type(w.type))}): {_text(redact_text(w.describe()))}\n"
    )


def _add_warnings(page: _Page, preview: Preview, allowed: bool, reserve: int) -> int:
    """Add the caution block; return how many warning lines did not fit."""
    danger = preview.destructive
    weak = preview.weakened
    if not danger and not weak:
        return 0
    kind = "WARNING" if allowed else "CAUTION"
    head = f"> [!{kind}]\n"
    if danger:
        head += (
            f"> **Stateful resources that would be deleted or replaced ({len(danger):,})** — one "
            "line per resource, the steps of each replacement merged:\n>\n"
        )
    tail = (
        "\n"
        if allowed
        else (
            f">\n> Review each line. If the data loss is intended, a repository owner adds the "
            f"{_code(ALLOW_LABEL)} label; otherwise change the code so these resources are "
            "updated in place.\n\n"
        )
    )
    lines = [_warning_line(r) for r in danger]
    if weak:
        intro = (
            f">\n> **Protections weakened ({len(weak):,})** — the next change could then lose "
            "data without a gate noticing:\n>\n"
        )
        lines += [intro] + [_weakening_line(w) for w in weak]
    more = "> - … and {n:,} more (see the preview artifact of this run)\n"
    budget = page.room() - reserve - width(head) - width(tail) - width(more) - 10
    kept = 0
    for line in lines:
        if width(line) > budget:
            break
        budget -= width(line)
        kept += 1
    page.add(head + "".join(lines[:kept]))
    if kept < len(lines):
        page.add(more.format(n=len(lines) - kept))
    page.add(tail)
    return len(lines) - kept


def _counts_table(preview: Preview) -> str:
    if not preview.counts:
        return "No resources in this preview.\n\n"
    rows = "".join(f"| {op} | {n:,} |\n" for op, n in preview.counts)
    return f"| operation | resources |\n|---|---:|\n{rows}\n"


# --- optional sections ---------------------------------------------------------------------


def _optional_sections(preview: Preview, ctx: Context, offline: Offline) -> list[_Section]:
    sections: list[_Section] = []
    if preview.policy_violations:
        sections.append(
            _Section(
                "policy violations",
                "#### Policy violations\n\n",
                [_diagnostic_line(d) for d in preview.policy_violations],
                "\n",
            )
        )
    problems = [
        d for d in preview.diagnostics if not d.policy and d.severity in ("error", "warning")
    ]
    if problems:
        sections.append(
            _Section(
                "errors and warnings",
                "#### Errors and warnings\n\n",
                [_diagnostic_line(d) for d in problems],
                "\n",
            )
        )
    changed = preview.changed
    if changed:
        sections.append(
            _Section(
                "table rows",
                "#### Changes, most dangerous first\n\n"
                "| operation | type | resources | names | changed properties |\n"
                "|---|---|---:|---|---|\n",
                _table_rows(changed),
                "\n",
            )
        )
    # The titles carry the counts: a reader sees what each report found without opening it.
    guardrails = offline.guardrails.summary() if offline.guardrails else None
    infra_diff = offline.infra_diff.summary() if offline.infra_diff else None
    for title, found, body, fence in (
        (GUARDRAILS_TITLE, guardrails, ctx.guardrails, True),
        (
            INFRA_DIFF_TITLE,
            infra_diff,
            ctx.infra_diff and strip_infra_diff_marker(ctx.infra_diff),
            False,
        ),
    ):
        if body and body.strip():
            heading = f"{title}: {found}" if found else title
            sections.append(_Section("offline reports", "", [_offline(heading, body, fence)], ""))
    if changed:
        for component, group in _by_component(changed):
            sections.append(
                _Section(
                    "resource details",
                    f"<details><summary>{_html(component)}: "
                    f"{plural(len(group), 'change')}</summary>\n\n",
                    [_detail(r) for r in group],
                    "</details>\n\n",
                )
            )
    return sections


def _offline(title: str, body: str, fence: bool) -> str:
    """A collapsed block with an offline report (redacted; long reports cut, the cut said)."""
    text = redact_text(body.strip())
    text = mask_accounts(text) if fence else _masked_markdown(text)
    if len(text) > _MAX_OFFLINE:
        text = _cut_offline(text, close_details=not fence)
    if fence:
        ticks = "```"
        while ticks in text:
            ticks += "`"
        text = f"{ticks}text\n{text}\n{ticks}"
    return f"<details><summary>{_html(title)}</summary>\n\n{text}\n\n</details>\n\n"


def _cut_offline(text: str, *, close_details: bool) -> str:
    """The first _MAX_OFFLINE characters, cut at a line end; a `<details>` of Markdown left open
    would hide the rest of the comment, and a note right under a table row would read as one
    more row."""
    kept = text[:_MAX_OFFLINE]
    if "\n" in kept:
        kept = kept[: kept.rindex("\n")]
    unclosed = 0
    if close_details:
        unclosed = len(re.findall(r"<details\b", kept)) - len(re.findall(r"</details>", kept))
    return (
        kept
        + "\n\n</details>" * max(unclosed, 0)
        + "\n\n… (cut; the full text is in the run's artifacts)"
    )


def _add_section(page: _Page, section: _Section) -> int:
    """Add the section with as many items as fit; return how many were added."""
    frame = width(section.header) + width(section.closer)
    if not section.items or page.room() < frame + width(section.items[0]):
        return 0
    page.add(section.header)
    room = page.room() - width(section.closer)
    kept = 0
    for item in section.items:
        w = width(item)
        if w > room:
            break
        page.add(item)
        room -= w
        kept += 1
    page.add(section.closer)
    return kept


def _by_component(
    resources: Iterable[ResourceChange],
) -> list[tuple[str, list[ResourceChange]]]:
    groups: dict[str, list[ResourceChange]] = {}
    for r in resources:
        groups.setdefault(r.component, []).append(r)
    return list(groups.items())


def _diagnostic_line(d: Diagnostic) -> str:
    icon = {"error": "❌", "warning": "⚠️"}.get(d.severity, "ℹ️")
    message = " ".join(d.message.split())
    # Pulumi prefixes messages with their severity ("error: "), which the line already shows.
    message = message.removeprefix(f"{d.severity}: ")
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    where = f" {_code(d.urn.rsplit('::', 1)[-1])}" if d.urn else ""
    return f"- {icon} **{d.severity}**{where}: {_text(message)}\n"


def _op_cell(r: ResourceChange) -> str:
    if r.destructive:
        return f"**{r.op}** ⛔"
    if r.op in ("replace", "delete"):
        return f"**{r.op}**"
    return r.op


def _table_rows(resources: Sequence[ResourceChange]) -> list[str]:
    """One row per (operation, type, set of changed properties), dangerous operations first."""
    groups: dict[tuple[str, str, tuple[str, ...], bool], list[ResourceChange]] = {}
    for r in resources:
        props = tuple(
            c.path + (" (forces replacement)" if c.forces_replacement else "") for c in r.changes
        )
        groups.setdefault((r.op, r.type, props, r.destructive), []).append(r)
    ordered = sorted(
        groups.items(),
        key=lambda item: (not item[0][3], op_rank(item[0][0]), short_type(item[0][1]), item[0][2]),
    )
    rows = []
    for (_, rtype, props, _), group in ordered:
        names = [_code(r.name) for r in group[:_MAX_NAMES]]
        if len(group) > _MAX_NAMES:
            names.append(f"+{len(group) - _MAX_NAMES:,} more")
        shown = [_code(p) for p in props[:_MAX_CELL_PROPERTIES]]
        if len(props) > _MAX_CELL_PROPERTIES:
            shown.append(f"+{len(props) - _MAX_CELL_PROPERTIES} more")
        rows.append(
            f"| {_op_cell(group[0])} | {_cell(_code(short_type(rtype)))} | {len(group):,} "
            f"| {_cell(', '.join(names))} | {_cell(', '.join(shown))} |\n"
        )
    return rows


def _detail(r: ResourceChange) -> str:
    head = f"**{_code(r.name)}** · {_code(short_type(r.type))} · {r.op}"
    if len(r.steps) > 1:
        head += f" (steps: {', '.join(r.steps)})"
    lines = [head + "\n"]
    for c in r.changes[:_MAX_PROPERTIES]:
        why = ", forces replacement" if c.forces_replacement else ""
        old = _code(c.old) if c.old is not None else "(none)"
        new = _code(c.new) if c.new is not None else "(none)"
        lines.append(f"- {_code(c.path)} ({c.kind}{why}): {old} → {new}\n")
    if len(r.changes) > _MAX_PROPERTIES:
        lines.append(f"- … {len(r.changes) - _MAX_PROPERTIES} more properties\n")
    for key, value in r.inputs[:_MAX_PROPERTIES]:
        lines.append(f"- {_code(key)}: {_code(value)}\n")
    if len(r.inputs) > _MAX_PROPERTIES:
        lines.append(f"- … {len(r.inputs) - _MAX_PROPERTIES} more inputs\n")
    return "".join(lines) + "\n"


def _footer(preview: Preview, omitted: dict[str, int], ctx: Context) -> str:
    if not omitted:
        return ""
    what = ", ".join(f"{n:,} {kind}" for kind, n in omitted.items())
    where = ctx.full_report_url or ctx.run_url
    # Without a link there may be no CI run at all (a local run): name the command instead.
    full = (
        f"Read [the full report]({_url(where)}) (`{FULL_REPORT_COMMAND}`), or run"
        if where
        else f"For the full report run `{FULL_REPORT_COMMAND}`, or"
    )
    return (
        f"_Trimmed to fit GitHub's {GITHUB_COMMENT_LIMIT:,}-character comment limit; omitted: "
        f"{what}. {full} `pulumi preview --diff --stack {preview.stack}`._\n"
    )


def _truncate(text: str, limit: int) -> str:
    out = []
    used = 0
    for c in text:
        used += width(c)
        if used > limit:
            break
        out.append(c)
    return "".join(out)


# --- escaping ------------------------------------------------------------------------------


def _code(text: str) -> str:
    """Inline code span that survives backticks and newlines in the text."""
    text = " ".join(mask_accounts(text).split("\n"))
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _url(url: str) -> str:
    """A link target that cannot close the Markdown link or carry credentials."""
    clean = mask_accounts(redact_text(url.strip()))
    return "".join(c for c in clean if c not in " ()<>\n\r\t")


def _html(text: str) -> str:
    return html.escape(" ".join(mask_accounts(text).split()), quote=False)


def _text(text: str) -> str:
    """Plain text that cannot open HTML tags or Markdown emphasis."""
    escaped = _html(text)
    for ch in "\\*_[]`":
        escaped = escaped.replace(ch, "\\" + ch)
    return escaped


def _cell(text: str) -> str:
    """A table cell: an unescaped pipe would end the cell even inside a code span."""
    return text.replace("|", "\\|")


# A code span or fenced block (CommonMark: a run of backticks closed by a run of the same length),
# where a mask's asterisks read as they are.
_CODE = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
_ESCAPED_MASK = "\\*" * len(MASKED_ACCOUNT)


def _masked_markdown(text: str) -> str:
    """`text` (Markdown) with the account ids in ARNs masked; outside code the mask's asterisks
    are escaped, or two masks on a line would read as emphasis and vanish."""
    if mask_accounts(text) == text:
        return text
    parts: list[str] = []
    pos = 0
    for span in _CODE.finditer(text):
        parts.append(mask_accounts(text[pos : span.start()]).replace(MASKED_ACCOUNT, _ESCAPED_MASK))
        parts.append(mask_accounts(span.group(0)))
        pos = span.end()
    parts.append(mask_accounts(text[pos:]).replace(MASKED_ACCOUNT, _ESCAPED_MASK))
    return "".join(parts)
