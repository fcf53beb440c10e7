"""preview_report: the PR comment a reviewer reads and the exit code CI gates on, for hand-written
`pulumi preview --json` documents (tests/fixtures/preview) and a generated 2,000-step preview."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbplatform.manifest.redact import SECRET_SIG_KEY, SECRET_SIG_VALUE
from dbplatform.preview.digest import parse_preview
from dbplatform.preview.markdown import GITHUB_COMMENT_LIMIT, render, width
from dbplatform.preview.synthetic import (
    SECRET_PLAINTEXT,
    STATEFUL_DELETED,
    STATEFUL_REPLACED,
    big_preview,
)
from scripts.preview_report import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "preview"
# Plaintexts present in the fixtures' states; none may reach a comment.
PLAINTEXTS = ("Old-Hunter2-Passphrase", "New-Correct-Horse-Battery", "Staging-Only-Pa55word")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def fixture(name: str) -> str:
    return str(FIXTURES / f"{name}.json")


def caution_block(markdown: str) -> str:
    return "\n".join(line for line in markdown.splitlines() if line.startswith(">"))


@pytest.fixture(scope="module")
def preview_2000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2,000-step preview, generated rather than committed."""
    path = tmp_path_factory.mktemp("preview") / "preview-2000.json"
    doc = big_preview(2000)
    assert len(doc["steps"]) == 2000
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# --- verdicts and warnings per fixture ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "verdict", "warned"),
    [
        ("create", 0, "✅ **11 to create in `staging`**", []),
        ("update", 0, "✅ **3 to update in `prod`**", []),
        ("no_changes", 0, "✅ **No changes in `prod`.**", []),
        ("diagnostics", 0, "❌ **The preview of `staging` reported 2 errors**", []),
        (
            "replace_db",
            3,
            "⛔ **Blocked: 1 stateful resource would be deleted or replaced",
            ["prod-primary"],
        ),
        (
            "delete",
            3,
            "⛔ **Blocked: 3 stateful resources would be deleted or replaced",
            ["prod-backup-key", "prod-backup-vault", "prod-master"],
        ),
    ],
)
def test_verdict_warnings_and_exit_code(
    capsys: pytest.CaptureFixture[str], name: str, code: int, verdict: str, warned: list[str]
) -> None:
    got, out, err = run(capsys, fixture(name))
    assert got == code, err
    lines = out.splitlines()
    assert lines[0].startswith("<!-- dbplatform-preview:")
    # A stack with no change gets one line under the marker; any other report a heading first.
    assert (lines[1] if name == "no_changes" else lines[3]).startswith(verdict)
    if name == "no_changes":
        assert len(lines) == 2
    block = caution_block(out)
    if warned:
        assert "[!CAUTION]" in block
        warned_lines = [line for line in block.splitlines() if line.startswith("> - **")]
        assert len(warned_lines) == len(warned)
        for resource in warned:
            assert f"`{resource}`" in block
        assert "refused" in err and "allow-destructive" in err
    else:
        assert block == ""


def test_replacement_of_db_is_one_warning_with_the_forcing_properties(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run(capsys, fixture("replace_db"))
    block = caution_block(out)
    # create-replacement, replace and delete-replaced of one URN: one line, not three
    assert block.count("`prod-primary`") == 1
    assert "forced by `kmsKeyId`, `storageEncrypted`" in block
    assert "protected" in block
    # a replaced security group holds no data: in the table, not among the warnings
    assert "prod-db-sg" not in block
    assert "`prod-db-sg`" in out
    assert "(steps: create-replacement, replace, delete-replaced)" in out


def test_forcing_property_comes_from_the_stateful_table_when_the_provider_is_silent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # delete.json replaces a Secret with no replaceReasons and a plain "update" diff kind
    _, out, _ = run(capsys, fixture("delete"))
    assert "`prod-master` (`secretsmanager/secret`" in out  # short type names
    assert "forced by `name`" in caution_block(out)
    # the non-stateful backup plan and the component are deleted too, but are no warning
    assert "prod-backup-plan" not in caution_block(out)


def test_allow_destructive_keeps_the_warning_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, fixture("replace_db"), "--allow-destructive")
    assert code == 0
    assert out.splitlines()[3].startswith("⚠️ **Destructive change approved (`allow-destructive`)")
    assert "[!WARNING]" in out and "`prod-primary`" in caution_block(out)


def test_counts_come_from_the_change_summary(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, fixture("update"))
    assert "| update | 3 |" in out and "| same | 9 |" in out
    _, out, _ = run(capsys, fixture("replace_db"))
    assert "| replace | 2 |" in out


def test_changes_are_listed_by_type_and_property_set_with_details_per_component(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run(capsys, fixture("update"))
    rows = [line for line in out.splitlines() if line.startswith("| ") and "`" in line]
    assert rows == [
        "| update | `cloudwatch/metricAlarm` | 1 | `prod-primary-cpu` | `alarmActions[1]` |",
        "| update | `rds/instance` | 1 | `prod-primary` "
        '| `backupRetentionPeriod`, `instanceClass`, `tags["cost-centre"]` |',
        "| update | `rds/instance` | 1 | `prod-replica-1` | `instanceClass` |",
    ]
    # the parent chain comes from the URN; the parent's name from the state, when it has one
    assert "<summary>Environment › Database (prod-db): 1 change</summary>" in out
    assert '- `instanceClass` (update): `"db.r6g.large"` → `"db.r6g.xlarge"`' in out
    assert '- `tags["cost-centre"]` (add): (none) → `"cc-042"`' in out


def test_dangerous_operations_come_first_across_components(
    capsys: pytest.CaptureFixture[str], preview_2000: Path
) -> None:
    _, out, _ = run(capsys, str(preview_2000))
    table = out.split("#### Changes, most dangerous first", 1)[1].split("\n\n", 2)[1]
    ops = [row.split("|")[1].strip() for row in table.splitlines()[2:]]
    assert ops[0] == "**replace** ⛔"
    first_plain = next(i for i, op in enumerate(ops) if "⛔" not in op)
    assert all("⛔" in op for op in ops[:first_plain])
    # 1,194 alarms with the same three properties changed are one row, not 1,194
    alarm_rows = [r for r in table.splitlines() if "| 1,194 |" in r]
    assert len(alarm_rows) == 1 and "`cloudwatch/metricAlarm`" in alarm_rows[0]
    assert "+1,189 more" in alarm_rows[0]


def test_policy_violations_and_errors_from_diagnostics(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("diagnostics"))
    assert code == 0
    policy = out.split("#### Policy violations", 1)[1].split("####", 1)[0]
    assert "rds-storage-encrypted" in policy and "\\[mandatory\\]" in policy
    assert "rds-not-public" in policy
    problems = out.split("#### Errors and warnings", 1)[1].split("####", 1)[0]
    assert "preview failed: 1 mandatory policy violation" in problems
    assert "backup window" in problems
    assert "detailed plugin trace" not in out  # debug messages are not for reviewers


def test_unknown_values_read_as_known_after_deploy(capsys: pytest.CaptureFixture[str]) -> None:
    # as the manifests and the infra diff in the same comment spell it (docs/ci.md says so too)
    _, out, _ = run(capsys, fixture("replace_db"))
    assert "`kmsKeyId` (add-replace, forces replacement): (none) → `(known after deploy)`" in out
    assert "04da6b54" not in out and "after apply" not in out


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_secrets_are_redacted(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, _ = run(capsys, fixture(name), "--allow-destructive")
    assert code == 0
    for plaintext in PLAINTEXTS:
        assert plaintext not in out


def test_secret_values_show_as_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, fixture("replace_db"))
    # marked secret by Pulumi; the new side says it changed, or the line would read as no change
    assert "- `password` (update): `[secret]` → `[secret] (changed)`" in out
    # a secret printed by the program into a diagnostic is scrubbed too
    assert "postgres://dbadmin:\\[secret\\]@prod-primary" in out
    _, out, _ = run(capsys, fixture("create"))
    # not marked secret, but named like a credential
    assert "- `password`: `[secret]`" in out
    assert "- `secretString`: `[secret]`" in out
    # a flag named like a credential is not itself secret; other values stay readable
    assert '- `engine`: `"postgres"`' in out


# --- size budget and determinism ------------------------------------------------------------


def test_2000_step_preview_fits_github_with_warnings_and_counts(
    capsys: pytest.CaptureFixture[str], preview_2000: Path
) -> None:
    code, out, _ = run(capsys, str(preview_2000))
    assert code == 3
    assert width(out) <= GITHUB_COMMENT_LIMIT
    assert out.splitlines()[3].startswith("⛔ **Blocked: 4 stateful resources")
    block = caution_block(out)
    for name in (*STATEFUL_REPLACED, *STATEFUL_DELETED):
        assert f"`{name}`" in block
    assert "| update | 1,194 |" in out and "| delete | 200 |" in out
    assert "#### Changes, most dangerous first" in out
    note = out.strip().splitlines()[-1]
    assert note.startswith("_Trimmed to fit GitHub's 65,535-character comment limit; omitted: ")
    assert "resource details" in note
    assert SECRET_PLAINTEXT not in out


def test_output_is_identical_across_processes(preview_2000: Path) -> None:
    # Different hash seeds change set and dict-of-set iteration order between processes.
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(
            [sys.executable, "-m", "scripts.preview_report", str(preview_2000)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]


def _step(i: int, op: str, type_token: str, component: str) -> dict[str, Any]:
    urn = (
        f"urn:pulumi:prod::dbplatform::dbplatform:index:Environment$dbplatform:index:{component}"
        f"${type_token}::res-{i:03d}-{'x' * (i % 40)}"
    )
    state = {
        "type": type_token,
        "inputs": {
            "name": f"n{i}" * 5,
            "password": {SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": "pw"},
        },
    }
    return {
        "op": op,
        "urn": urn,
        "oldState": state,
        "newState": state,
        "detailedDiff": {"name": {"kind": "update-replace"}, "tags.a": {"kind": "update"}},
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["create", "update", "delete", "replace", "same", "delete-replaced"]),
            st.sampled_from(
                ["aws:rds/instance:Instance", "aws:cloudwatch/metricAlarm:MetricAlarm"]
            ),
            st.sampled_from(["Database", "Alarms", "Replicas"]),
        ),
        max_size=120,
    ),
    limit=st.integers(min_value=2_500, max_value=12_000),
)
def test_any_preview_fits_any_budget_with_verdict_and_counts(
    ops: list[tuple[str, str, str]], limit: int
) -> None:
    doc = {"steps": [_step(i, *o) for i, o in enumerate(ops)]}
    preview = parse_preview(doc, "generated")
    report = render(preview, allow_destructive=False, limit=limit)
    assert width(report.markdown) <= limit
    lines = report.markdown.splitlines()
    if not preview.changed:  # one line: the verdict under the marker
        assert len(lines) == 2 and lines[1].startswith("✅ **No changes")
        return
    assert lines[3].startswith(("⛔", "✅", "❌"))
    if preview.destructive:
        assert "[!CAUTION]" in report.markdown
    for op, n in preview.counts:
        assert f"| {op} | {n:,} |" in report.markdown


def test_names_cannot_break_the_table_or_inject_html(capsys: pytest.CaptureFixture[str]) -> None:
    parent = "urn:pulumi:prod::dbplatform::dbplatform:index:Database::<b>db</b>"
    urn = "urn:pulumi:prod::dbplatform::dbplatform:index:Database$aws:s3/bucket:Bucket::a|b`c"
    doc = {"steps": [{"op": "create", "urn": urn, "newState": {"parent": parent}}]}
    report = render(parse_preview(doc, "inline"), allow_destructive=False)
    row = next(line for line in report.markdown.splitlines() if "a\\|b" in line)
    assert row.replace("\\|", "").count("|") == 6  # five cells
    assert "<b>" not in report.markdown and "&lt;b&gt;db&lt;/b&gt;" in report.markdown


# --- input errors and output options --------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("warning: something\n{", "is not valid JSON (line 1, column 1"),
        ("[1, 2]", "is not the output of `pulumi preview --json`"),
        ('{"stack": "prod"}', "is not the output of `pulumi preview --json`"),
        ('{"steps": [{"op": "create"}]}', "steps[0] has no valid 'urn'"),
        ('{"steps": [{"urn": "urn:pulumi:a::b::c::d"}]}', "steps[0] has no 'op' string"),
        (
            '{"steps": [{"op": "update", "urn": "urn:pulumi:a::b::c::d", "detailedDiff": []}]}',
            "'detailedDiff' must be an object",
        ),
        ('{"changeSummary": {"create": "three"}}', "'changeSummary' must map operations"),
        ('{"diagnostics": [{"severity": "error"}]}', "diagnostics[0] has no 'message' string"),
    ],
)
def test_invalid_input_exits_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "preview.json"
    path.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, str(path))
    assert code == 2
    assert out == ""
    assert err.startswith(f"preview_report: {path}") and message in err


def test_missing_file_and_wrong_stack_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "does/not/exist.json")
    assert code == 2 and "cannot read does/not/exist.json: No such file or directory" in err
    code, _, err = run(capsys, fixture("create"), "--stack", "prod")
    assert code == 2
    assert "is a preview of stack 'staging', not 'prod'" in err


def test_cli_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "preview.json"
    path.write_text("error: could not resolve stack\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.preview_report", str(path), "--stack", "prod"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "is not valid JSON" in proc.stderr


def test_out_writes_the_comment_and_logs_the_verdict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "comment.md"
    code, out, err = run(capsys, fixture("replace_db"), "--stack", "prod", "--out", str(target))
    assert code == 3 and out == ""
    assert target.read_text(encoding="utf-8").startswith("<!-- dbplatform-preview:prod -->")
    assert err.startswith("preview_report: BLOCKED: 1 stateful resource")


def test_json_summary_lists_the_destructive_resources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("delete"), "--json")
    assert code == 3
    summary = json.loads(out)
    assert [(d["name"], d["op"]) for d in summary["destructive"]] == [
        ("prod-backup-key", "delete"),
        ("prod-backup-vault", "delete"),
        ("prod-master", "replace"),
    ]
    assert summary["counts"] == {"replace": 1, "delete": 4, "same": 14}
    assert summary["exit_code"] == 3


def test_full_report_for_artifacts_has_no_size_limit(
    capsys: pytest.CaptureFixture[str], preview_2000: Path
) -> None:
    code, out, _ = run(capsys, str(preview_2000), "--full")
    assert code == 3
    assert "Trimmed" not in out
    # every changed resource has its details (same/read are not changes)
    details = [line for line in out.splitlines() if line.startswith("**`tenant-")]
    assert len(details) == 3 + 200 + 398 + 1194  # replace, delete, create, update counts
    assert SECRET_PLAINTEXT not in out


# --- protection weakened, provenance, offline checks ---------------------------------------

_KEY_POLICY = json.dumps(
    {
        "Statement": [
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*"},
            {"Sid": "DenyDelete", "Effect": "Deny", "Principal": "*", "Action": "kms:Schedule*"},
        ]
    }
)
_PRIMARY = "urn:pulumi:prod::dbplatform::dbplatform:index:Database$aws:rds/instance:Instance::p"
_VAULT_LOCK = (
    "urn:pulumi:prod::dbplatform::aws:backup/vaultLockConfiguration:VaultLockConfiguration::lock"
)
_TRUST = json.dumps(
    {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "backup.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
    }
)
_TRUST_WIDER = json.dumps(
    {
        "Statement": [
            *json.loads(_TRUST)["Statement"],
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                "Action": "sts:AssumeRole",
            },
        ]
    }
)
_KEY = "urn:pulumi:prod::dbplatform::aws:kms/key:Key::key"
_STACK = "urn:pulumi:prod::dbplatform::pulumi:pulumi:Stack::dbplatform-prod"


def _update(urn: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    rtype = urn.split("::")[2].rsplit("$", 1)[-1]
    return {
        "op": "update",
        "urn": urn,
        "oldState": {"type": rtype, **old},
        "newState": {"type": rtype, **new},
    }


_LOCK = {"minRetentionDays": 35, "maxRetentionDays": 400, "changeableForDays": 3}
# (kind, steps): each weakens one protection and deletes or replaces nothing.
WEAKENINGS = [
    ("protect", [_update(_PRIMARY, {"protect": True}, {"protect": False})]),
    ("retainOnDelete", [_update(_PRIMARY, {"retainOnDelete": True}, {})]),
    (
        "deletionProtection",
        [
            _update(
                _PRIMARY,
                {"inputs": {"deletionProtection": True}},
                {"inputs": {"deletionProtection": False}},
            )
        ],
    ),
    (
        "skipFinalSnapshot",
        [
            _update(
                _PRIMARY,
                {"inputs": {"skipFinalSnapshot": False}},
                {"inputs": {"skipFinalSnapshot": True}},
            )
        ],
    ),
    ("tier", [_update(_STACK, {"outputs": {"tier": "production"}}, {"outputs": {"tier": "x"}})]),
    (
        "vaultLock",
        [_update(_VAULT_LOCK, {"inputs": _LOCK}, {"inputs": {**_LOCK, "minRetentionDays": 1}})],
    ),
    (
        "vaultLock",
        [
            {
                "op": "delete",
                "urn": _VAULT_LOCK,
                "oldState": {"type": _VAULT_LOCK.split("::")[2], "inputs": _LOCK},
            }
        ],
    ),
    (
        "policyDeny",
        [
            _update(
                _KEY,
                {"inputs": {"policy": _KEY_POLICY}},
                {"inputs": {"policy": json.dumps({"Statement": []})}},
            )
        ],
    ),
    (  # security re-audit N4: an outside account let into a role, as a Deny removed would
        "policyAllow",
        [
            _update(
                "urn:pulumi:prod::dbplatform::aws:iam/role:Role::backups-role",
                {"inputs": {"assumeRolePolicy": _TRUST}},
                {"inputs": {"assumeRolePolicy": _TRUST_WIDER}},
            )
        ],
    ),
]


@pytest.mark.parametrize(("kind", "steps"), WEAKENINGS, ids=[k for k, _ in WEAKENINGS])
def test_a_weakened_protection_is_refused_like_a_deletion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, steps: list[dict[str, Any]]
) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"steps": steps}), encoding="utf-8")
    code, out, err = run(capsys, str(path), "--json")
    assert code == 3, err
    summary = json.loads(out)
    assert [w["kind"] for w in summary["weakened"]] == [kind]
    assert "protection weakened" in err
    code, out, _ = run(capsys, str(path))
    assert "[!CAUTION]" in out and "Protections weakened (1)" in out
    code, out, _ = run(capsys, str(path), "--allow-destructive")
    assert code == 0 and "1 protection weakened" in out


def test_an_unchanged_protection_is_not_a_weakening(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, fixture("update"))
    assert code == 0
    same = _update(_KEY, {"inputs": {"policy": _KEY_POLICY}}, {"inputs": {"policy": _KEY_POLICY}})
    assert parse_preview({"steps": [same]}, "inline").weakened == ()


def test_an_approved_delete_of_a_protected_resource_says_the_update_will_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, fixture("replace_db"), "--allow-destructive")
    assert code == 0
    verdict = out.splitlines()[3]
    assert "Destructive change approved" in verdict
    assert "**The update will fail:**" in verdict and "`prod-primary`" in verdict


def test_the_comment_names_commit_run_time_and_cloud_and_includes_offline_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guardrails = tmp_path / "guardrails.txt"
    guardrails.write_text("OK: no mandatory rule fails (2 advisory rule(s) fail)\n", "utf-8")
    diff = tmp_path / "diff.md"
    diff.write_text("engine major version 16 → 17 at postgres://u:diffpw-777@h/db\n", "utf-8")
    code, out, _ = run(
        capsys,
        fixture("update"),
        "--commit", "0123456789abcdef0123456789abcdef01234567",
        "--run-url", "https://github.com/acme/dbplatform/actions/runs/42",
        "--time", "2026-12-01 23:00 UTC",
        "--cloud-url", "https://app.pulumi.com/acme/dbplatform/prod/previews/abc",
        "--guardrails", str(guardrails),
        "--infra-diff", str(diff),
    )  # fmt: skip
    assert code == 0
    provenance = out.splitlines()[3]
    assert provenance == (
        "<sub>commit `0123456789ab` · [workflow run](https://github.com/acme/dbplatform/actions/"
        "runs/42) · 2026-12-01 23:00 UTC · [Pulumi Cloud](https://app.pulumi.com/acme/dbplatform/"
        "prod/previews/abc)</sub>"
    )
    # the title carries the count the guardrails' last line gives
    assert "<summary>Offline guardrails: 2 advisory rules fail</summary>" in out
    assert "2 advisory rule(s) fail" in out
    # a text that is not the infra diff's report is shown under its plain title, nothing claimed
    assert "<summary>Offline infra diff against the base branch</summary>" in out
    assert "engine major version 16 → 17" in out and "diffpw-777" not in out


def test_a_trimmed_comment_links_the_full_report(
    capsys: pytest.CaptureFixture[str], preview_2000: Path, tmp_path: Path
) -> None:
    big = tmp_path / "diff.md"
    big.write_text("x" * 200_000, encoding="utf-8")
    url = "https://github.com/acme/dbplatform/actions/runs/42#artifacts"
    _, out, _ = run(capsys, str(preview_2000), "--full-report-url", url, "--infra-diff", str(big))
    assert width(out) <= GITHUB_COMMENT_LIMIT
    assert f"Read [the full report]({url})" in out.strip().splitlines()[-1]


def test_an_unreadable_offline_report_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, fixture("update"), "--guardrails", "/nonexistent/g.txt")
    assert code == 2
    assert "cannot read --guardrails /nonexistent/g.txt" in err


@settings(max_examples=40, deadline=None)
@given(
    before=st.fixed_dictionaries(
        {"protect": st.booleans(), "retainOnDelete": st.booleans(), "dp": st.booleans()}
    ),
    after=st.fixed_dictionaries(
        {"protect": st.booleans(), "retainOnDelete": st.booleans(), "dp": st.booleans()}
    ),
)
def test_a_protection_is_weakened_exactly_when_it_was_on_and_is_now_off(
    before: dict[str, bool], after: dict[str, bool]
) -> None:
    def state(s: dict[str, bool]) -> dict[str, Any]:
        return {
            "protect": s["protect"],
            "retainOnDelete": s["retainOnDelete"],
            "inputs": {"deletionProtection": s["dp"]},
        }

    preview = parse_preview({"steps": [_update(_PRIMARY, state(before), state(after))]}, "gen")
    kinds = {w.kind for w in preview.weakened}
    expected = {
        kind
        for kind, key in (
            ("protect", "protect"),
            ("retainOnDelete", "retainOnDelete"),
            ("deletionProtection", "dp"),
        )
        if before[key] and not after[key]
    }
    assert kinds == expected
    assert (render(preview, allow_destructive=False).markdown.count("⛔") > 0) is bool(expected)


# --- account ids in ARNs ---------------------------------------------------------------------

_TOPIC = (
    "urn:pulumi:prod::dbplatform::dbplatform:index:Alarms$aws:cloudwatch/metricAlarm:MetricAlarm"
)


def _preview_with_accounts(account: str, other: str) -> dict[str, Any]:
    """An update of an alarm's actions (one ARN long enough to be cut at 60 characters), a new
    subscription, and a diagnostic naming two ARNs, in the accounts `account` and `other`."""
    sns = f"arn:aws:sns:us-east-1:{account}"
    long_arn = f"arn:aws:iam::{other}:role/dbplatform-prod-alarm-actions-with-a-long-name"
    urn = f"{_TOPIC}::prod-cpu-high"
    sub = "urn:pulumi:prod::dbplatform::dbplatform:index:Alarms$aws:sns/topicSubscription:"
    sub += "TopicSubscription::prod-oncall-email"
    return {
        "steps": [
            {
                "op": "update",
                "urn": urn,
                "oldState": {
                    "urn": urn,
                    "type": "aws:cloudwatch/metricAlarm:MetricAlarm",
                    "inputs": {"alarmActions": [f"{sns}:oncall"], "roleArn": "none"},
                },
                "newState": {
                    "urn": urn,
                    "type": "aws:cloudwatch/metricAlarm:MetricAlarm",
                    "inputs": {"alarmActions": [f"{sns}:oncall", f"{sns}:data-team"]},
                    "outputs": {"roleArn": long_arn},
                },
                "detailedDiff": {
                    "alarmActions[1]": {"kind": "add"},
                    "roleArn": {"kind": "update"},
                },
            },
            {
                "op": "create",
                "urn": sub,
                "newState": {
                    "urn": sub,
                    "type": "aws:sns/topicSubscription:TopicSubscription",
                    "inputs": {"topic": f"{sns}:oncall", "protocol": "email"},
                },
            },
        ],
        "diagnostics": [
            {
                "urn": urn,
                "prefix": "warning: ",
                "message": f"{sns}:oncall and {sns}:data-team have no subscriber",
                "severity": "warning",
            },
            {
                "urn": urn,
                "message": f"[advisory]  dbplatform-guardrails v0.1.0  sns-encrypted ({long_arn})"
                "\nSNS topics should be encrypted.\n",
                "severity": "warning",
            },
        ],
        "changeSummary": {"update": 1, "create": 1},
    }


def test_account_ids_in_arns_are_masked_in_the_comment_the_full_report_and_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(_preview_with_accounts("123456789012", "210987654321")), "utf-8")
    diff = tmp_path / "diff.md"
    diff.write_text(
        "- `prod-cpu-high`: alarm actions arn:aws:sns:us-east-1:123456789012:oncall and "
        "arn:aws:sns:us-east-1:123456789012:data-team, `arn:aws:iam::210987654321:role/x`\n",
        "utf-8",
    )
    outputs = {}
    for flags in ((), ("--full",), ("--json",)):
        code, out, err = run(capsys, str(path), "--infra-diff", str(diff), *flags)
        assert code == 0, err
        outputs[flags] = out + err
        for account in ("123456789012", "210987654321", "1234567", "2109876"):
            assert account not in out + err, (flags, account)
    comment = outputs[()]
    # in code, the mask reads as it is; the resource names and the rest of each ARN stay
    assert "`prod-cpu-high`" in comment and "`prod-oncall-email`" in comment
    assert '"arn:aws:sns:us-east-1:************:data-team"' in comment  # a changed value
    assert '"arn:aws:iam::************:role/dbplatform-prod-alarm-actio…' in comment  # cut after
    assert "`arn:aws:iam::************:role/x`" in comment  # a span of the infra diff
    # in text, the asterisks are escaped so that two masks on a line do not read as emphasis
    masked = "\\*" * 12
    assert f"arn:aws:sns:us-east-1:{masked}:oncall and arn:aws:sns:us-east-1:{masked}:data" in (
        comment
    )
    assert outputs[("--full",)].count("************") >= 3


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    account=st.from_regex(r"[0-9]{12}", fullmatch=True),
    other=st.from_regex(r"[0-9]{12}", fullmatch=True),
)
def test_no_generated_account_id_survives_in_any_report(account: str, other: str) -> None:
    preview = parse_preview(_preview_with_accounts(account, other), "generated.json")
    for limit in (GITHUB_COMMENT_LIMIT, 2_000, 10**9):
        report = render(preview, allow_destructive=False, limit=limit)
        for text in (report.markdown, report.verdict):
            # any 7 digits in a row would be a piece of one (the report has no other numbers
            # that long)
            assert account[:7] not in text and account[-7:] not in text, text
            assert other[:7] not in text and other[-7:] not in text, text


# --- what the offline checks found reaches the verdict ----------------------------------------

GOLDEN = ROOT / "tests" / "golden"


def _infra_diff_report(tmp_path: Path, **head_inputs: Any) -> tuple[Path, dict[str, Any]]:
    """The offline infra diff (Markdown, as CI writes it) of prod with the primary's inputs
    changed, and the same diff as JSON (what the Markdown's counts must agree with)."""
    from dbplatform.manifest.synthetic import with_inputs
    from policy.manifest import load
    from scripts import infra_diff

    base = load(GOLDEN / "prod.json")
    head = tmp_path / "head.json"
    head.write_text(with_inputs(base, "database-primary", **head_inputs).to_json(), "utf-8")
    report = tmp_path / "diff.md"
    summary = tmp_path / "diff.json"
    for fmt, out in (("markdown", report), ("json", summary)):
        infra_diff.main(
            [str(GOLDEN / "prod.json"), str(head), "-q", "--format", fmt, "--out", str(out)]
        )
    return report, json.loads(summary.read_text("utf-8"))


def _guardrails_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, int, int]:
    """The guardrails' text report of staging judged as production (mandatory rules fail), and
    the numbers of failing mandatory and advisory rules by the same tool's JSON."""
    from scripts import guardrails

    args = ["--manifest", str(GOLDEN / "staging.json"), "--tier", "production"]
    args += ["--set-level", "rds-multi-az=advisory"]
    guardrails.main(args)
    text = capsys.readouterr().out
    guardrails.main([*args, "--json"])
    rules = json.loads(capsys.readouterr().out)["rules"]
    failing = [r["level"] for r in rules if r["status"] == "fail"]
    path = tmp_path / "guardrails.txt"
    path.write_text(text, "utf-8")
    return path, failing.count("mandatory"), failing.count("advisory")


def test_a_flagged_infra_diff_takes_the_green_tick_and_titles_its_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The review's case: the cloud preview updates three resources and deletes nothing, while the
    # offline diff of the same pull request replaces the (protected) primary.
    diff, found = _infra_diff_report(tmp_path, identifier="dbplatform-prod-pg-2")
    at_risk, refused = len(found["atRisk"]), len(found["refused"])
    assert at_risk and refused
    out_file = tmp_path / "comment.md"
    code, _, err = run(capsys, fixture("update"), "--infra-diff", str(diff), "--out", str(out_file))
    out = out_file.read_text("utf-8")
    verdict = out.splitlines()[3]
    assert not verdict.startswith("✅") and "✅" not in out
    assert verdict == (
        "⚠️ **3 to update in `prod`**: the cloud preview deletes or replaces no stateful resource, "
        f"but **the offline infra diff against the base branch flags {at_risk} stateful resource "
        f"at risk and {refused} change `pulumi up` would fail on**."
    )
    assert err.startswith(
        "preview_report: WARNING: 3 to update in prod: the cloud preview deletes or replaces no "
        "stateful resource, but the offline infra diff against the base branch flags "
    )
    assert (
        "<summary>Offline infra diff against the base branch: "
        f"{at_risk} stateful resource at risk, {refused} change pulumi up would fail on</summary>"
    ) in out
    assert "dbplatform-infra-diff" not in out  # the counts line is read, not shown
    # the gate on the offline diff is its own job's (infra_diff exits 3); this exit code is still
    # the cloud preview's
    assert code == 0


def test_an_unflagged_infra_diff_keeps_the_green_tick_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    diff, found = _infra_diff_report(tmp_path, instanceClass="db.r6g.2xlarge")
    assert not (found["atRisk"] or found["refused"] or found["weakened"])
    n = len(found["changes"])
    _, out, _ = run(capsys, fixture("update"), "--infra-diff", str(diff))
    assert out.splitlines()[3].startswith("✅ **3 to update in `prod`**")
    change = "resource change" if n == 1 else "resource changes"
    assert (
        "<summary>Offline infra diff against the base branch: nothing flagged "
        f"({n} {change})</summary>"
    ) in out


def test_a_failing_mandatory_guardrail_is_in_the_verdict_and_its_title(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, mandatory, advisory = _guardrails_report(tmp_path, capsys)
    assert mandatory > 1 and advisory > 1
    _, out, _ = run(capsys, fixture("update"), "--guardrails", str(report))
    verdict = out.splitlines()[3]
    assert verdict.startswith("⚠️ **3 to update in `prod`**")
    assert verdict.endswith(f"but **{mandatory} mandatory offline guardrails fail**.")
    assert (
        f"<summary>Offline guardrails: {mandatory} mandatory rules fail, {advisory} advisory "
        "rules fail</summary>"
    ) in out


def test_offline_findings_are_added_to_a_blocking_verdict_and_to_no_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    diff, found = _infra_diff_report(tmp_path, identifier="dbplatform-prod-pg-2")
    flags = f"flags {len(found['atRisk'])} stateful resource at risk"
    _, out, _ = run(capsys, fixture("replace_db"), "--infra-diff", str(diff))
    verdict = out.splitlines()[3]
    assert verdict.startswith("⛔ **Blocked: 1 stateful resource would be deleted or replaced")
    assert f"Also, **the offline infra diff against the base branch {flags}" in verdict
    # no change in the cloud: not the one-line comment, since the offline diff flags something
    _, out, _ = run(capsys, fixture("no_changes"), "--infra-diff", str(diff))
    verdict = out.splitlines()[3]
    assert verdict.startswith(
        f"⚠️ **No changes in `prod`** in the cloud preview, but **the offline infra diff "
        f"against the base branch {flags}"
    )
    assert "<summary>Offline infra diff against the base branch: " in out


def test_offline_counts_come_only_from_the_line_each_tool_writes_first_or_last() -> None:
    from dbplatform.preview.offline import read_guardrails, read_infra_diff

    line = "<!-- dbplatform-infra-diff: at-risk=0 refused=0 weakened=0 changes=1 -->"
    assert read_infra_diff(f"{line}\n## Infrastructure diff") is not None
    # a resource name further down cannot pass for the counts line
    assert read_infra_diff(f"The base branch has no valid synth\n{line}\n") is None
    ok = "OK: no mandatory rule fails (0 advisory rule(s) fail)"
    failed = "FAILED: 1 mandatory rule(s) fail: stateful-protected"
    assert read_guardrails(f"      - x: {ok}\n\n{failed}\n") is not None
    assert read_guardrails(f"{failed}\n      - {ok}\n") is None
    assert read_guardrails('{"ok": true}') is None


def test_a_cut_offline_report_closes_what_it_opened(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from dbplatform.manifest import diff
    from dbplatform.manifest.synthetic import environment

    # big enough to be collapsed by the infra diff, then cut to fit in the comment
    text = diff.to_markdown(
        diff.diff(environment(replicas=120), environment(replicas=120, instance_class="x"))
    )
    assert "<details>" in text
    path = tmp_path / "diff.md"
    path.write_text(text, "utf-8")
    _, out, _ = run(capsys, fixture("update"), "--infra-diff", str(path))
    assert "(cut; the full text is in the run's artifacts)" in out
    assert out.count("<details>") == out.count("</details>")
    # the details of the preview itself still follow, outside the infra diff's block
    assert out.rstrip().endswith("</details>") and "`prod-replica-1`" in out.split("(cut;", 1)[1]


def test_a_trimmed_comment_without_a_link_names_the_command(
    capsys: pytest.CaptureFixture[str], preview_2000: Path
) -> None:
    _, out, _ = run(capsys, str(preview_2000))
    note = out.strip().splitlines()[-1]
    assert note.endswith(
        ". For the full report run `dbplatform preview-report --full`, or "
        "`pulumi preview --diff --stack prod`._"
    )


def test_a_changed_secret_reads_as_changed_in_the_comment_and_the_full_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for flags in ((), ("--full",)):
        _, out, _ = run(capsys, fixture("replace_db"), *flags)
        assert "- `password` (update): `[secret]` → `[secret] (changed)`" in out, flags
    # a value that only became secret (the same plaintext on both sides) did not change
    urn = "urn:pulumi:prod::dbplatform::aws:rds/instance:Instance::p"
    secret = {SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": "Same-Secret-Value-1"}
    step = {
        "op": "update",
        "urn": urn,
        "oldState": {"type": "aws:rds/instance:Instance", "inputs": {"password": secret}},
        "newState": {"type": "aws:rds/instance:Instance", "inputs": {"password": secret}},
        "detailedDiff": {"password": {"kind": "update"}},
    }
    (change,) = parse_preview({"steps": [step]}, "inline").resources[0].changes
    assert (change.old, change.new) == ("[secret]", "[secret]")


def test_the_offline_only_comment_claims_nothing_for_a_missing_or_clean_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """preview.yml's comment for prod (no cloud preview from a pull request) asks these: a report
    whose step failed gives the plain title and no warning, a clean one says it is clean."""
    from dbplatform.preview import offline

    missing = tmp_path / "nothing.md"
    assert offline.main(["title", "infra-diff", str(missing)]) == 0
    assert capsys.readouterr().out == f"{offline.INFRA_DIFF_TITLE}\n"
    assert offline.main(["warning", str(missing), str(missing)]) == 0
    assert capsys.readouterr().out == ""
    clean = tmp_path / "guardrails.txt"
    clean.write_text("OK: no mandatory rule fails (0 advisory rule(s) fail)\n", encoding="utf-8")
    assert offline.main(["title", "guardrails", str(clean)]) == 0
    assert capsys.readouterr().out == f"{offline.GUARDRAILS_TITLE}: no rule fails\n"
