"""What the offline checks found, read back from their reports: the preview report puts these
counts in its verdict and in the titles of its collapsed sections, so a reader who opens nothing
still sees that the infra diff flags a stateful resource or that a mandatory guardrail fails.

Each count is read from a line the tool writes where no data can come before it (the infra
diff's first line, the guardrails' last), so a resource name inside a report cannot forge one.
A report in any other shape gives None: the section then keeps its plain title, and nothing is
claimed about it.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

INFRA_DIFF_TITLE = "Offline infra diff against the base branch"
GUARDRAILS_TITLE = "Offline guardrails"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# The infra diff's Markdown starts with this hidden line (dbplatform.manifest.diff.to_markdown).
_INFRA_DIFF_LINE = re.compile(
    r"<!-- dbplatform-infra-diff: at-risk=(\d+) refused=(\d+) weakened=(\d+) changes=(\d+) -->"
)


@dataclass(frozen=True)
class InfraDiffCounts:
    """The counts of an offline infra diff report."""

    at_risk: int
    """Stateful resources destroyed, replaced or irreversibly changed."""
    refused: int
    """Resource changes `pulumi up` would fail on (refused by AWS or stopped by `protect`)."""
    weakened: int
    """Protections turned off or loosened."""
    changes: int
    """Resources created, updated, replaced, renamed or deleted."""

    @property
    def flagged(self) -> bool:
        """What makes `infra-diff` exit 3: CI then wants an owner's approval."""
        return bool(self.at_risk or self.refused or self.weakened)

    def marker(self) -> str:
        """The hidden first line of the report, which `read_infra_diff` reads back."""
        return (
            f"<!-- dbplatform-infra-diff: at-risk={self.at_risk} refused={self.refused} "
            f"weakened={self.weakened} changes={self.changes} -->"
        )

    def findings(self, command: str = "pulumi up") -> list[str]:
        """One phrase per kind of flag (`command` as the caller quotes it: Markdown or HTML)."""
        out = []
        if self.at_risk:
            out.append(f"{plural(self.at_risk, 'stateful resource')} at risk")
        if self.refused:
            out.append(f"{plural(self.refused, 'change')} {command} would fail on")
        if self.weakened:
            out.append(f"{plural(self.weakened, 'protection')} weakened")
        return out

    def summary(self) -> str:
        """For a section title: the flags, else that nothing is flagged."""
        found = self.findings()
        if found:
            return ", ".join(found)
        if not self.changes:
            return "no change"
        return f"nothing flagged ({plural(self.changes, 'resource change')})"


def read_infra_diff(text: str) -> InfraDiffCounts | None:
    """The counts of an infra diff's Markdown report, or None when `text` is not one."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    match = _INFRA_DIFF_LINE.fullmatch(first)
    if match is None:
        return None
    at_risk, refused, weakened, changes = (int(g) for g in match.groups())
    return InfraDiffCounts(at_risk, refused, weakened, changes)


def strip_infra_diff_marker(text: str) -> str:
    """`text` without the hidden counts line, once they have been read."""
    first, _, rest = text.lstrip("\ufeff").partition("\n")
    return rest if _INFRA_DIFF_LINE.fullmatch(first.strip()) else text


# The last line of `scripts.guardrails`' text report (report_text), and its rows of failing
# advisory rules: `  <rule>  <control>  advisory   FAIL (<n>)`.
_GUARDRAILS_OK = re.compile(r"OK: no mandatory rule fails \((\d+) advisory rule\(s\) fail\)")
_GUARDRAILS_FAILED = re.compile(r"FAILED: (\d+) mandatory rule\(s\) fail: .*")
_ADVISORY_FAIL_ROW = re.compile(r"  \S+ +\S.*? advisory +FAIL \(\d+\)")


@dataclass(frozen=True)
class GuardrailsCounts:
    """How many guardrail rules fail, by level."""

    mandatory: int
    advisory: int

    @property
    def flagged(self) -> bool:
        """A mandatory rule fails: the offline gate fails the pull request."""
        return self.mandatory > 0

    def summary(self) -> str:
        parts = []
        if self.mandatory:
            parts.append(f"{plural(self.mandatory, 'mandatory rule')} {_fail(self.mandatory)}")
        if self.advisory:
            parts.append(f"{plural(self.advisory, 'advisory rule')} {_fail(self.advisory)}")
        return ", ".join(parts) if parts else "no rule fails"


def _fail(n: int) -> str:
    return "fails" if n == 1 else "fail"


def read_guardrails(text: str) -> GuardrailsCounts | None:
    """The counts of the guardrails' text report, or None when `text` is not one."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1].strip()
    if match := _GUARDRAILS_OK.fullmatch(last):
        return GuardrailsCounts(mandatory=0, advisory=int(match.group(1)))
    if match := _GUARDRAILS_FAILED.fullmatch(last):
        # This line names only the mandatory rules; the advisory ones are the table's rows.
        advisory = sum(1 for line in lines[:-1] if _ADVISORY_FAIL_ROW.fullmatch(line.rstrip()))
        return GuardrailsCounts(mandatory=int(match.group(1)), advisory=advisory)
    return None


def title(kind: str, text: str) -> str:
    """A collapsed section's title with what its report found (the preview report's titles)."""
    if kind == "infra-diff":
        diff = read_infra_diff(text)
        return f"{INFRA_DIFF_TITLE}: {diff.summary()}" if diff else INFRA_DIFF_TITLE
    rules = read_guardrails(text)
    return f"{GUARDRAILS_TITLE}: {rules.summary()}" if rules else GUARDRAILS_TITLE


@dataclass(frozen=True)
class Offline:
    """What both offline reports say, where they are in a shape that can be counted: the preview
    report's verdict and the workflow's offline-only comment (`warning`) say it alike."""

    infra_diff: InfraDiffCounts | None
    guardrails: GuardrailsCounts | None

    @classmethod
    def read(cls, infra_diff: str | None, guardrails: str | None) -> Offline:
        return cls(
            infra_diff=read_infra_diff(infra_diff) if infra_diff else None,
            guardrails=read_guardrails(guardrails) if guardrails else None,
        )

    @property
    def flagged(self) -> bool:
        return bool(
            (self.infra_diff and self.infra_diff.flagged)
            or (self.guardrails and self.guardrails.flagged)
        )

    def findings(self, command: str) -> list[str]:
        """One clause per offline check that flags something."""
        out = []
        if self.infra_diff and self.infra_diff.flagged:
            *first, last = self.infra_diff.findings(command)
            what = f"{', '.join(first)} and {last}" if first else last
            out.append(f"the offline infra diff against the base branch flags {what}")
        if self.guardrails and self.guardrails.flagged:
            n = self.guardrails.mandatory
            out.append(f"{plural(n, 'mandatory offline guardrail')} {_fail(n)}")
        return out


def warning(infra_diff: str, guardrails: str) -> str:
    """One line for the top of a comment when either report flags something, else ""."""
    found = "; ".join(Offline.read(infra_diff, guardrails).findings("`pulumi up`"))
    return f"⚠️ **{found[0].upper()}{found[1:]}.**" if found else ""


def main(argv: list[str] | None = None) -> int:
    """For the workflow's offline-only comment (preview.yml, where no cloud preview runs):
    `title infra-diff|guardrails FILE` prints a section's title with its counts, `warning
    DIFF GUARDRAILS` the warning line or nothing."""
    parser = argparse.ArgumentParser(prog="python -m dbplatform.preview.offline")
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("title")
    one.add_argument("kind", choices=("infra-diff", "guardrails"))
    one.add_argument("file", type=Path)
    both = sub.add_parser("warning")
    both.add_argument("infra_diff", type=Path)
    both.add_argument("guardrails", type=Path)
    args = parser.parse_args(argv)

    def read(path: Path) -> str:
        # a report that is missing (its step failed) claims nothing: the plain title, no warning
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    if args.what == "title":
        print(title(args.kind, read(args.file)))
    else:
        line = warning(read(args.infra_diff), read(args.guardrails))
        if line:
            print(f"{line}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
