"""The GitHub workflows users run (.github/workflows), checked offline: valid against GitHub's
workflow schema, OIDC-only AWS access, pinned actions and CLI, one deploy per stack at a time,
prod behind its environment, and the destructive-change gate run as CI would run it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("preview.yml", "deploy.yml", "drills.yml")
FIXTURES = ROOT / "tests" / "fixtures" / "preview"
BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
TAG_COMMENT = re.compile(r"#\s*v\d+(\.\d+){0,2}\b")


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def jobs(name: str) -> dict[str, dict[str, Any]]:
    return load(name)["jobs"]


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(action + "@")]


def step(job: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if s.get("id") == step_id)


def run_scripts(name: str) -> list[str]:
    return [s["run"] for job in jobs(name).values() for s in job.get("steps", []) if "run" in s]


def command_lines(name: str) -> list[str]:
    """Every shell command line of a workflow, continuation lines joined."""
    lines = []
    for script in run_scripts(name):
        lines.extend(script.replace("\\\n", " ").splitlines())
    return [" ".join(line.split()) for line in lines]


def check_jsonschema() -> str:
    found = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
    if not found:
        pytest.fail("check-jsonschema is not installed: run `make setup`")
    return found


def offline_env() -> dict[str, str]:
    # Any attempt to download a schema would go to a closed local port and fail.
    closed = "http://127.0.0.1:9"
    return dict(os.environ, HTTP_PROXY=closed, HTTPS_PROXY=closed, NO_PROXY="")


# --- schema --------------------------------------------------------------------------------


def test_workflows_are_valid_github_workflows_offline(tmp_path: Path) -> None:
    # A deliberately broken copy (a job without runs-on) shows the validator really checks.
    broken = tmp_path / "broken.yml"
    text = (WORKFLOWS / "drills.yml").read_text(encoding="utf-8")
    broken.write_text(text.replace("runs-on:", "runs_on:", 1), encoding="utf-8")
    files = [str(WORKFLOWS / n) for n in NAMES]
    proc = subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.github-workflows", *files, str(broken)],
        capture_output=True,
        text=True,
        env=offline_env(),
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if "::$" in line]
    assert errors and all(str(broken) in line for line in errors), proc.stdout
    assert "'runs-on' is a required property" in proc.stdout


@pytest.mark.parametrize("name", NAMES)
def test_every_job_has_a_timeout(name: str) -> None:
    for job_id, job in jobs(name).items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: {job_id} has no timeout"


# --- credentials and permissions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "aws_steps"), [("preview.yml", 1), ("deploy.yml", 2), ("drills.yml", 2)]
)
def test_aws_access_is_oidc_only(name: str, aws_steps: int) -> None:
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    for stored_key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws-access-key-id"):
        assert stored_key not in text
    aws_jobs = 0
    for job_id, job in jobs(name).items():
        for s in steps_using(job, "aws-actions/configure-aws-credentials"):
            aws_jobs += 1
            assert s["with"]["role-to-assume"].startswith("${{ vars."), job_id
            assert not {"aws-secret-access-key", "aws-session-token"} & s["with"].keys()
            assert job["permissions"]["id-token"] == "write", job_id
    assert aws_jobs == aws_steps


@pytest.mark.parametrize("name", NAMES)
def test_permissions_are_granted_per_job_only(name: str) -> None:
    doc = load(name)
    assert doc["permissions"] == {}
    for job_id, job in doc["jobs"].items():
        assert isinstance(job["permissions"], dict), job_id
        uses_aws = bool(steps_using(job, "aws-actions/configure-aws-credentials"))
        assert (job["permissions"].get("id-token") == "write") == uses_aws, job_id


@pytest.mark.parametrize("name", NAMES)
def test_no_expression_is_pasted_into_shell_or_script_code(name: str) -> None:
    # A pull request's title or branch name interpolated into code could run as code; values
    # reach the scripts through `env:` instead.
    for job_id, job in jobs(name).items():
        for s in job.get("steps", []):
            code = s.get("run", "") + str(s.get("with", {}).get("script", ""))
            assert "${{" not in code, f"{name}: {job_id}: {s.get('name', s.get('uses'))}"


# --- pinning -------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_with_its_tag() -> None:
    pins: dict[str, set[str]] = {}
    for name in NAMES:
        for line in (WORKFLOWS / name).read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match:
                continue
            ref, rest = match.groups()
            assert SHA_PIN.match(ref), f"{name}: {ref} is not pinned to a 40-character commit"
            assert TAG_COMMENT.search(rest), f"{name}: {ref} has no '# vX.Y.Z' tag comment"
            action, sha = ref.split("@")
            pins.setdefault(action, set()).add(sha)
    assert {"actions/checkout", "aws-actions/configure-aws-credentials"} <= pins.keys()
    drifted = {action: shas for action, shas in pins.items() if len(shas) > 1}
    assert not drifted, f"one action pinned to several commits: {drifted}"


def test_pulumi_cli_version_is_pinned_to_the_sdk_version() -> None:
    sdk = re.search(
        r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.M
    )
    assert sdk, "requirements.txt pins no pulumi version"
    installs = 0
    for name in ("preview.yml", "deploy.yml"):
        doc = load(name)
        for job in doc["jobs"].values():
            for s in steps_using(job, "pulumi/actions"):
                installs += 1
                assert "command" not in s["with"]  # install only; commands run in our steps
                assert s["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
        assert re.fullmatch(r"\d+\.\d+\.\d+", doc["env"]["PULUMI_VERSION"])
        assert doc["env"]["PULUMI_VERSION"] == sdk.group(1)
    assert installs == 3  # preview, deploy staging, deploy prod


# --- concurrency, environments, policy -----------------------------------------------------


def test_two_deploys_of_one_stack_never_overlap() -> None:
    groups = {}
    for job_id, job in jobs("deploy.yml").items():
        if not any("pulumi up" in s.get("run", "") for s in job["steps"]):
            continue
        stack = job["env"]["STACK"]
        assert job["concurrency"]["cancel-in-progress"] is False, job_id
        assert stack in job["concurrency"]["group"], job_id
        groups[stack] = job["concurrency"]["group"]
    assert set(groups) == {"staging", "prod"}
    assert len(set(groups.values())) == 2  # one group per stack


def test_previews_and_drills_are_serialised_per_stack() -> None:
    preview = jobs("preview.yml")["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    assert "${{ matrix.stack }}" in preview["concurrency"]["group"]
    assert "${{ github.event.pull_request.number }}" in preview["concurrency"]["group"]
    for job_id in ("restore-check", "dr-drill"):
        job = jobs("drills.yml")[job_id]
        assert job["concurrency"] == {"group": "drill-prod", "cancel-in-progress": False}


def test_prod_deploys_after_staging_behind_its_environment() -> None:
    deploy = jobs("deploy.yml")
    assert deploy["prod"]["environment"] == "prod"
    assert "staging" in deploy["prod"]["needs"]
    assert deploy["staging"]["environment"] == "staging"
    assert load("deploy.yml")["on"]["push"]["branches"] == ["main"]


def test_preview_and_up_run_the_policy_pack_and_up_applies_the_saved_plan() -> None:
    pulumi = [
        line
        for name in ("preview.yml", "deploy.yml")
        for line in command_lines(name)
        if line.startswith(("pulumi preview ", "pulumi up "))
    ]
    assert len(pulumi) == 5  # preview per stack in PRs; preview and up per stack in deploys
    for command in pulumi:
        assert "--policy-pack policy" in command, command
    for command in (c for c in pulumi if "pulumi up " in c):
        assert '--plan "build/plan-$STACK.json"' in command
    deploy_previews = [c for c in command_lines("deploy.yml") if c.startswith("pulumi preview ")]
    assert len(deploy_previews) == 2
    for command in deploy_previews:
        assert '--save-plan "build/plan-$STACK.json"' in command


def test_preview_reruns_when_the_approval_label_changes() -> None:
    types = load("preview.yml")["on"]["pull_request"]["types"]
    assert {"synchronize", "labeled", "unlabeled"} <= set(types)


# --- the destructive-change gate, run as CI runs it ----------------------------------------


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # `shell: bash` on GitHub runs `bash --noprofile --norc -eo pipefail {0}`.
    full_env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(ROOT),
        GITHUB_OUTPUT=str(cwd / "github_output"),
        GITHUB_STEP_SUMMARY=str(cwd / "step_summary"),
        ALLOW_LABEL="allow-destructive",
        RUN_URL="https://github.example/run/1",
    )
    full_env.update(env)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )


def _outputs(cwd: Path) -> dict[str, str]:
    lines = (cwd / "github_output").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize(
    ("where", "fixture", "approved", "passes"),
    [
        ("preview.yml:preview", "replace_db", "false", False),
        ("preview.yml:preview", "replace_db", "true", True),
        ("preview.yml:preview", "update", "false", True),
        ("deploy.yml:prod", "replace_db", "false", False),
        ("deploy.yml:prod", "replace_db", "true", True),
    ],
)
def test_destructive_gate_fails_unless_approved(
    tmp_path: Path, where: str, fixture: str, approved: str, passes: bool
) -> None:
    workflow, job_id = where.split(":")
    job = jobs(workflow)[job_id]
    report, gate = step(job, "report"), step(job, "gate")
    # The workflow wires the approval and the report's exit code into the gate.
    assert job["env"]["APPROVED"] == "${{ needs.approval.outputs.approved }}"
    assert gate["env"]["REPORT_RC"] == "${{ steps.report.outputs.rc }}"

    stack = "prod"
    (tmp_path / "build").mkdir()
    shutil.copy(FIXTURES / f"{fixture}.json", tmp_path / "build" / f"preview-{stack}.json")
    env = {"STACK": stack, "APPROVED": approved}
    ran = _bash(report["run"], env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    comment = (tmp_path / "build" / f"comment-{stack}.md").read_text(encoding="utf-8")
    assert comment.startswith(f"<!-- dbplatform-preview:{stack} -->")
    assert (tmp_path / "build" / f"report-full-{stack}.md").exists()

    gate_env = dict(env, REPORT_RC=_outputs(tmp_path)["rc"])
    gate_env.update(PREVIEW_OUTCOME="success", OFFLINE_OUTCOME="success", DIFF_RC="")
    result = _bash(gate["run"], gate_env, tmp_path)
    assert (result.returncode == 0) is passes, result.stdout + result.stderr
    if not passes:
        assert "::error title=" in result.stdout and "allow-destructive" in result.stdout


@pytest.mark.parametrize(
    ("diff_rc", "approved", "preview", "passes"),
    [
        ("3", "false", "success", False),
        ("3", "true", "success", True),
        ("0", "false", "failure", False),
        ("1", "false", "success", False),
    ],
)
def test_preview_gate_also_covers_offline_diff_and_failed_preview(
    tmp_path: Path, diff_rc: str, approved: str, preview: str, passes: bool
) -> None:
    gate = step(jobs("preview.yml")["preview"], "gate")
    assert gate["env"]["DIFF_RC"] == "${{ steps.offline.outputs.diff_rc }}"
    env = {
        "STACK": "prod",
        "APPROVED": approved,
        "REPORT_RC": "0",
        "DIFF_RC": diff_rc,
        "PREVIEW_OUTCOME": preview,
        "OFFLINE_OUTCOME": "success",
    }
    result = _bash(gate["run"], env, tmp_path)
    assert (result.returncode == 0) is passes, result.stdout


# A stand-in for the GitHub CLI: answers each API path with a canned value and logs the calls.
_FAKE_GH = """#!/usr/bin/env bash
echo "$*" >> "$GH_LOG"
case "$*" in
  *"-X DELETE"*) ;;
  *"/commits/"*"/pulls"*) echo "$FAKE_PR" ;;
  *"/events"*) echo "$FAKE_LABELER" ;;
  *"/permission"*) echo "$FAKE_PERMISSION" ;;
  *"/issues/"*) echo "$FAKE_LABELLED" ;;
esac
"""


def _approval(tmp_path: Path, workflow: str, env: dict[str, str]) -> tuple[str, str]:
    """Run a workflow's approval step with the fake `gh`; return (approved, gh calls)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    gh = fake_bin / "gh"
    gh.write_text(_FAKE_GH, encoding="utf-8")
    gh.chmod(0o755)
    log = tmp_path / "gh.log"
    log.touch()
    script = step(jobs(workflow)["approval"], "check")["run"]
    full_env = dict(env, GH_LOG=str(log), REPO="acme/dbplatform", PR="7", SHA="abc123")
    full_env["PATH"] = os.pathsep.join((str(fake_bin), str(BIN), os.environ["PATH"]))
    result = _bash(script, full_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return _outputs(tmp_path)["approved"], log.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("action", "permission", "approved"),
    [("labeled", "admin", "true"), ("labeled", "maintain", "true"), ("labeled", "write", "false")],
)
def test_preview_approval_counts_only_an_owner_label(
    tmp_path: Path, action: str, permission: str, approved: str
) -> None:
    env = {
        "HAS_LABEL": "true",
        "ACTION": action,
        "FAKE_LABELER": "alice",
        "FAKE_PERMISSION": permission,
    }
    got, calls = _approval(tmp_path, "preview.yml", env)
    assert got == approved
    assert "repos/acme/dbplatform/collaborators/alice/permission" in calls


def test_preview_approval_is_withdrawn_by_new_commits(tmp_path: Path) -> None:
    env = {"HAS_LABEL": "true", "ACTION": "synchronize", "FAKE_PERMISSION": "admin"}
    got, calls = _approval(tmp_path, "preview.yml", env)
    assert got == "false"
    assert "-X DELETE repos/acme/dbplatform/issues/7/labels/allow-destructive" in calls


@pytest.mark.parametrize(
    "case",
    [
        # event, label on the merged PR, dispatch input, permission of who applied/ran it, approved
        ("push", "true", "", "maintain", "true"),
        ("push", "true", "", "write", "false"),
        ("push", "false", "", "admin", "false"),
        ("workflow_dispatch", "", "true", "admin", "true"),
        ("workflow_dispatch", "", "true", "write", "false"),
        ("workflow_dispatch", "", "false", "admin", "false"),
    ],
)
def test_deploy_approval_needs_an_owner(tmp_path: Path, case: tuple[str, ...]) -> None:
    event, labelled, dispatch_allow, permission, approved = case
    env = {
        "EVENT": event,
        "ACTOR": "carol",
        "DISPATCH_ALLOW": dispatch_allow,
        "FAKE_PR": "41",
        "FAKE_LABELER": "alice",
        "FAKE_LABELLED": labelled,
        "FAKE_PERMISSION": permission,
    }
    got, _ = _approval(tmp_path, "deploy.yml", env)
    assert got == approved


# --- drills and the Makefile ---------------------------------------------------------------


def test_drills_run_on_their_schedules_upload_reports_and_alert() -> None:
    doc = load("drills.yml")
    crons = {entry["cron"] for entry in doc["on"]["schedule"]}
    commands = {
        "restore-check": "python -m scripts.restore_check --stack prod --json",
        "dr-drill": 'python -m scripts.dr drill --stack prod --region "$DR_REGION" --yes',
    }
    lines = command_lines("drills.yml")
    for job_id, command in commands.items():
        job = doc["jobs"][job_id]
        scheduled = re.findall(r"github\.event\.schedule == '([^']+)'", job["if"])
        assert len(scheduled) == 1 and scheduled[0] in crons, job_id
        assert any(line.startswith(command) for line in lines), job_id
        uploads = steps_using(job, "actions/upload-artifact")
        assert uploads and uploads[0]["if"] == "always()", job_id
    assert len(crons) == 2
    alert = doc["jobs"]["alert"]
    assert alert["if"] == "failure()" and set(alert["needs"]) == set(commands)


def _makefile_targets() -> set[str]:
    makefile = ROOT / "Makefile"
    if not makefile.exists():
        pytest.fail(f"{makefile} is missing: the workflows run `make` targets defined there")
    targets = set()
    for line in makefile.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", line)
        if match and not match.group(1).startswith("."):
            targets.add(match.group(1))
    return targets


def test_make_targets_used_by_workflows_exist() -> None:
    used = {
        target
        for name in NAMES
        for script in run_scripts(name)
        for target in re.findall(r"(?:^|[\s;&|(])make\s+([A-Za-z0-9_.-]+)", script)
    }
    assert used, "the workflows set the project up with `make setup`"
    missing = used - _makefile_targets()
    assert not missing, f"workflows run make targets the Makefile lacks: {sorted(missing)}"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_the_policy_pack_runs_at_the_stacks_tier_levels(name: str) -> None:
    """Non-production stacks get the advisory levels, as the offline guardrails give them."""
    for job_name, job in load(name)["jobs"].items():
        runs = [s.get("run", "") for s in job.get("steps", [])]
        with_pack = [i for i, r in enumerate(runs) if "--policy-pack policy" in r]
        if not with_pack:
            continue
        for i in with_pack:
            assert "--policy-pack policy $POLICY_ARGS" in runs[i], (name, job_name)
        (tier_step,) = [i for i, r in enumerate(runs) if "POLICY_ARGS=" in r]
        assert tier_step < min(with_pack), (name, job_name)
        assert "load_stack('$STACK').tier" in runs[tier_step]
        assert "policy/non-production.json" in runs[tier_step]
