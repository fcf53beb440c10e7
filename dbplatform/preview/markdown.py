"""Render a parsed preview as a pull-request comment that puts danger first and always fits GitHub.

The verdict, the stateful-resource warnings and the operation counts are always kept; policy
violations, errors, the table of changes and the per-resource details fill the remaining room in
that order, and a closing note says how much was left out.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dbplatform.preview.digest import Diagnostic, Preview, ResourceChange

# GitHub refuses a comment body over 65,535 characters.
GITHUB_COMMENT_LIMIT = 65_535
ALLOW_LABEL = "allow-destructive"
# Room kept back for the closing note, whatever else is cut.
_FOOTER_RESERVE = 400
_MAX_PROPERTIES = 20
_MAX_CELL_PROPERTIES = 6
_MAX_MESSAGE = 600


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
    preview: Preview, *, allow_destructive: bool, limit: int = GITHUB_COMMENT_LIMIT
) -> Report:
    """The comment for `preview`, never wider than `limit`."""
    verdict_md, verdict_plain = _verdict(preview, allow_destructive)
    page = _Page(limit - _FOOTER_RESERVE)
    page.add(f"{marker(preview.stack)}\n### Pulumi preview of {_code(preview.stack)}\n\n")
    page.add(verdict_md + "\n\n")
    counts = _counts_table(preview)
    omitted_warnings = _add_warnings(page, preview, allow_destructive, reserve=width(counts))
    page.add(counts)

    omitted: dict[str, int] = {}
    if omitted_warnings:
        omitted["stateful-resource warnings"] = omitted_warnings
    stopped = False
    for section in _optional_sections(preview):
        # Once something does not fit, later sections are left out whole: a reader sees a prefix
        # of the report in priority order, never a gap in the middle.
        kept = 0 if stopped else _add_section(page, section)
        if kept < len(section.items):
            omitted[section.kind] = omitted.get(section.kind, 0) + len(section.items) - kept
            stopped = True

    page.limit += _FOOTER_RESERVE
    page.add(_footer(preview, omitted))
    text = page.text()
    if width(text) > limit:  # only reachable with a limit too small for the verdict itself
        text = _truncate(text, limit)
    return Report(markdown=text, verdict=verdict_plain, omitted=sum(omitted.values()))


# --- verdict and warnings ------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _summary(preview: Preview) -> str:
    parts = [f"{n:,} to {op}" for op, n in preview.counts if op not in ("same", "read", "refresh")]
    return ", ".join(parts) if parts else "no changes"


def _verdict(preview: Preview, allow_destructive: bool) -> tuple[str, str]:
    danger = preview.destructive
    mandatory = [d for d in preview.policy_violations if d.severity == "error"]
    problems = len(preview.errors) + len(mandatory)
    extra = f" The preview also reported {_plural(problems, 'error')}." if problems else ""
    stack = preview.stack
    if danger and not allow_destructive:
        plain = (
            f"BLOCKED: {_plural(len(danger), 'stateful resource')} would be deleted or replaced "
            f"in {stack}; this needs the '{ALLOW_LABEL}' label from a repository owner."
        )
        md = (
            f"⛔ **Blocked: {_plural(len(danger), 'stateful resource')} would be deleted or "
            f"replaced in {_code(stack)}.** Merging needs the {_code(ALLOW_LABEL)} label from a "
            f"repository owner.{extra}"
        )
    elif problems:
        approved = (
            f" Destructive change approved ({ALLOW_LABEL}): "
            f"{_plural(len(danger), 'stateful resource')} will be deleted or replaced."
            if danger
            else ""
        )
        plain = f"FAILED: the preview of {stack} reported {_plural(problems, 'error')}.{approved}"
        md = (
            f"❌ **The preview of {_code(stack)} reported {_plural(problems, 'error')}** "
            f"({_summary(preview)}); see below.{approved}"
        )
    elif danger:
        plain = (
            f"APPROVED DESTRUCTIVE: {_plural(len(danger), 'stateful resource')} will be deleted "
            f"or replaced in {stack} ({ALLOW_LABEL})."
        )
        md = (
            f"⚠️ **Destructive change approved ({_code(ALLOW_LABEL)}): "
            f"{_plural(len(danger), 'stateful resource')} will be deleted or replaced in "
            f"{_code(stack)}.**"
        )
    elif preview.changed:
        plain = f"OK: {_summary(preview)} in {stack}; no stateful resource deleted or replaced."
        md = (
            f"✅ **{_summary(preview).capitalize()} in {_code(stack)}**; no stateful resource is "
            "deleted or replaced."
        )
    else:
        plain = f"OK: no changes in {stack}."
        md = f"✅ **No changes in {_code(stack)}.**"
    return md, plain


def _warning_line(r: ResourceChange) -> str:
    line = f"> - **{r.op}** {_code(r.name)} ({_code(r.type)}: {_text(r.what_is_lost)})"
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


def _add_warnings(page: _Page, preview: Preview, allowed: bool, reserve: int) -> int:
    """Add the caution block; return how many warning lines did not fit."""
    danger = preview.destructive
    if not danger:
        return 0
    kind = "WARNING" if allowed else "CAUTION"
    head = (
        f"> [!{kind}]\n> **Stateful resources that would be deleted or replaced "
        f"({len(danger):,})** — one line per resource, the steps of each replacement merged:\n>\n"
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


def _optional_sections(preview: Preview) -> list[_Section]:
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
                "#### Changes by component\n\n"
                "| component | resource | type | operation | changed properties |\n"
                "|---|---|---|---|---|\n",
                _table_rows(changed),
                "\n",
            )
        )
        for component, group in _by_component(changed):
            sections.append(
                _Section(
                    "resource details",
                    f"<details><summary>{_html(component)}: "
                    f"{_plural(len(group), 'change')}</summary>\n\n",
                    [_detail(r) for r in group],
                    "</details>\n\n",
                )
            )
    return sections


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
    rows = []
    previous = None
    for r in resources:
        component = _cell(_text(r.component)) if r.component != previous else ""
        previous = r.component
        props = [
            _code(c.path) + (" (forces replacement)" if c.forces_replacement else "")
            for c in r.changes[:_MAX_CELL_PROPERTIES]
        ]
        if len(r.changes) > _MAX_CELL_PROPERTIES:
            props.append(f"+{len(r.changes) - _MAX_CELL_PROPERTIES} more")
        rows.append(
            f"| {component} | {_cell(_code(r.name))} | {_cell(_code(r.type))} | {_op_cell(r)} "
            f"| {_cell(', '.join(props))} |\n"
        )
    return rows


def _detail(r: ResourceChange) -> str:
    head = f"**{_code(r.name)}** · {_code(r.type)} · {r.op}"
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


def _footer(preview: Preview, omitted: dict[str, int]) -> str:
    if not omitted:
        return ""
    what = ", ".join(f"{n:,} {kind}" for kind, n in omitted.items())
    return (
        f"_Trimmed to fit GitHub's {GITHUB_COMMENT_LIMIT:,}-character comment limit; omitted: "
        f"{what}. The full report is in this run's artifacts (`preview_report --full`), or run "
        f"`pulumi preview --diff --stack {preview.stack}`._\n"
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
    text = " ".join(text.split("\n"))
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _html(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False)


def _text(text: str) -> str:
    """Plain text that cannot open HTML tags or Markdown emphasis."""
    escaped = _html(text)
    for ch in "\\*_[]`":
        escaped = escaped.replace(ch, "\\" + ch)
    return escaped


def _cell(text: str) -> str:
    """A table cell: an unescaped pipe would end the cell even inside a code span."""
    return text.replace("|", "\\|")
