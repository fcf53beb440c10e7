"""The GitHub workflows users run (.github/workflows), checked offline: valid against GitHub's
workflow schema, OIDC-only AWS access, pinned actions and CLI, one deploy per stack at a time,
prod behind its environment, and the destructive-change gate run as CI would run it."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import SAFE_YAML_LOADER

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("preview.yml", "deploy.yml", "drills.yml")
FIXTURES = ROOT / "tests" / "fixtures" / "preview"
BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
TAG_COMMENT = re.compile(r"#\s*v\d+(\.\d+){0,2}\b")


def load(name: str) -> dict[str, Any]:
    # the safe loader the commands use (libyaml's where present: parsed for each of ~80 tests);
    # not their strict one, which refuses the YAML 1.1 boolean key `on` that GitHub reads
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    doc = yaml.load(text, Loader=SAFE_YAML_LOADER)  # noqa: S506 - a safe loader
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
    ("name", "aws_steps"), [("preview.yml", 1), ("deploy.yml", 3), ("drills.yml", 2)]
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
    assert installs == 4  # cloud preview; deploy staging, plan prod, apply prod


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
    preview = jobs("preview.yml")["cloud-preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["staging"]
    assert "${{ matrix.stack }}" in preview["concurrency"]["group"]
    assert "${{ github.event.pull_request.number }}" in preview["concurrency"]["group"]
    for job_id in ("restore-check", "dr-drill"):
        job = jobs("drills.yml")[job_id]
        assert job["concurrency"] == {"group": "drill-prod", "cancel-in-progress": False}


def test_prod_is_planned_read_only_then_applied_behind_its_environment() -> None:
    deploy = jobs("deploy.yml")
    plan, apply = deploy["plan-prod"], deploy["apply-prod"]
    assert "staging" in plan["needs"] and "plan-prod" in apply["needs"]
    assert apply["environment"] == "prod" and plan["environment"] == "prod-plan"
    assert deploy["staging"]["environment"] == "staging"
    roles = [
        s["with"]["role-to-assume"]
        for s in steps_using(plan, "aws-actions/configure-aws-credentials")
    ]
    assert roles == ["${{ vars.AWS_PREVIEW_ROLE_ARN }}"]  # read-only: the plan job applies nothing
    assert not any("pulumi up" in s.get("run", "") for s in plan["steps"])
    assert not any("pulumi preview" in s.get("run", "") for s in apply["steps"])
    assert load("deploy.yml")["on"]["push"]["branches"] == ["main"]


def test_preview_and_up_run_the_policy_pack_and_up_applies_the_saved_plan() -> None:
    pulumi = [
        line
        for name in ("preview.yml", "deploy.yml")
        for line in command_lines(name)
        if line.startswith(("pulumi preview ", "pulumi up "))
    ]
    # cloud preview in PRs; deploy: staging preview and up, prod plan and apply
    assert len(pulumi) == 5
    for command in pulumi:
        assert "--policy-pack" in command and "$POLICY_ARGS" in command, command
    for command in (c for c in pulumi if "pulumi up " in c):
        assert '--plan "build/plan-$STACK.json"' in command
    deploy_previews = [c for c in command_lines("deploy.yml") if c.startswith("pulumi preview ")]
    assert len(deploy_previews) == 2
    for command in deploy_previews:
        assert '--save-plan "build/plan-$STACK.json"' in command
    # In pull requests the policy pack is the base branch's, not the branch's own.
    (pr_preview,) = [c for c in command_lines("preview.yml") if c.startswith("pulumi preview ")]
    assert '--policy-pack "$GITHUB_WORKSPACE/base/policy"' in pr_preview
    assert "--cwd head" in pr_preview


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


def _report_workspace(tmp_path: Path, fixture: str, stack: str) -> None:
    """A workspace laid out as the jobs see it: base/ (tooling), head/.venv, build/."""
    (tmp_path / "build").mkdir()
    (tmp_path / "base").symlink_to(ROOT)
    (tmp_path / "head").mkdir()
    (tmp_path / "head" / ".venv").symlink_to(BIN.parent)
    shutil.copy(FIXTURES / f"{fixture}.json", tmp_path / "build" / f"preview-{stack}.json")
    (tmp_path / "build" / f"preview-{stack}.log").write_text(
        "View in Browser: https://app.pulumi.com/acme/dbplatform/prod/previews/abc\n", "utf-8"
    )
    # What the cloud-preview job hands the report job besides the JSON.
    (tmp_path / "build" / f"cloud-url-{stack}.txt").write_text(
        "https://app.pulumi.com/acme/dbplatform/prod/previews/abc\n", "utf-8"
    )
    (tmp_path / "build" / f"outcome-{stack}.txt").write_text("success\n", "utf-8")
    (tmp_path / "build" / f"guardrails-{stack}.txt").write_text("OK: guardrails\n", "utf-8")
    (tmp_path / "build" / f"infra-diff-{stack}.md").write_text("no changes\n", "utf-8")


@pytest.mark.parametrize(
    ("where", "fixture", "approved", "passes"),
    [
        ("preview.yml:report", "replace_db", "false", False),
        ("preview.yml:report", "replace_db", "true", True),
        ("preview.yml:report", "update", "false", True),
        ("deploy.yml:plan-prod", "replace_db", "false", False),
        ("deploy.yml:plan-prod", "replace_db", "true", True),
        ("deploy.yml:staging", "update", "false", True),
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
    _report_workspace(tmp_path, fixture, stack)
    env = {
        "STACK": stack,
        "APPROVED": approved,
        "HEAD_SHA": "0123456789abcdef0123456789abcdef01234567",
        "COMMIT": "0123456789abcdef0123456789abcdef01234567",
        "PYTHONPATH": str(tmp_path / "base"),
        "PREVIEW_RESULT": "success",  # preview.yml: the cloud-preview job succeeded
    }
    ran = _bash(report["run"], env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    comment = (tmp_path / "build" / f"comment-{stack}.md").read_text(encoding="utf-8")
    assert comment.startswith(f"<!-- dbplatform-preview:{stack} -->")
    assert "commit `0123456789ab`" in comment and "https://github.example/run/1" in comment
    if workflow == "preview.yml":
        assert "[Pulumi Cloud](https://app.pulumi.com/acme/dbplatform/prod/previews/abc)" in comment
        assert "<summary>Offline guardrails</summary>" in comment
    assert (tmp_path / "build" / f"report-full-{stack}.md").exists()

    gate_env = dict(env, REPORT_RC=_outputs(tmp_path)["rc"], PREVIEW_OUTCOME="success")
    result = _bash(gate["run"], gate_env, tmp_path)
    assert (result.returncode == 0) is passes, result.stdout + result.stderr
    if not passes:
        assert "::error title=" in result.stdout and "allow-destructive" in result.stdout


@pytest.mark.parametrize(
    ("result", "outcome", "passes"),
    [
        ("success", "success", True),
        ("success", "failure", False),  # `pulumi preview` failed: its JSON is still reported
        ("failure", "", False),  # e.g. a fork refused, or the job broke after the preview
        ("skipped", "", False),  # the offline checks failed, or the environment was not approved
        ("cancelled", "", False),
    ],
)
def test_the_report_job_reads_the_preview_only_when_the_cloud_preview_job_succeeded(
    tmp_path: Path, result: str, outcome: str, passes: bool
) -> None:
    """The report job always runs (a skipped required check would pass) but fails closed: the
    preview job's result and outcome come from the runner (`needs`), not from files the branch's
    program could write, and a job that did not succeed has its artifact left unread."""
    preview = jobs("preview.yml")
    job = preview["report"]
    assert job["if"] == "${{ !cancelled() }}"
    assert job["env"]["PREVIEW_RESULT"] == "${{ needs.cloud-preview.result }}"
    assert job["env"]["PREVIEW_OUTCOME"] == "${{ needs.cloud-preview.outputs.outcome }}"
    assert preview["cloud-preview"]["outputs"]["outcome"] == "${{ steps.preview.outcome }}"
    (download,) = [
        s
        for s in steps_using(job, "actions/download-artifact")
        if s["with"]["name"] == "preview-json-${{ matrix.stack }}"
    ]
    assert download["if"] == "needs.cloud-preview.result == 'success'"
    # Whatever the branch's program left in the workspace: a clean preview and a success
    # outcome file. It must not be what the report shows or the gate passes on.
    # (The fixtures are previews of `prod`; the step's script is the same for every stack.)
    _report_workspace(tmp_path, "update" if passes else "replace_db", "prod")
    if result != "success":
        shutil.copy(FIXTURES / "update.json", tmp_path / "build" / "preview-prod.json")
    env = {
        "STACK": "prod",
        "APPROVED": "false",
        "HEAD_SHA": "0123456789abcdef0123456789abcdef01234567",
        "PYTHONPATH": str(tmp_path / "base"),
        "PREVIEW_RESULT": result,
        "PREVIEW_OUTCOME": outcome,
    }
    ran = _bash(step(job, "report")["run"], env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    comment = (tmp_path / "build" / "comment-prod.md").read_text(encoding="utf-8")
    assert comment.startswith("<!-- dbplatform-preview:prod -->")
    rc = _outputs(tmp_path)["rc"]
    if result != "success":
        assert "No cloud preview" in comment and f"result `{result}`" in comment
        assert rc == "no-preview"
        assert not (tmp_path / "build" / "report-full-prod.md").exists()
    gate = _bash(step(job, "gate")["run"], dict(env, REPORT_RC=rc), tmp_path)
    assert (gate.returncode == 0) is passes, gate.stdout
    if result != "success":
        assert "::error title=No cloud preview (prod)::" in gate.stdout
    elif not passes:
        assert "::error title=pulumi preview failed (prod)::" in gate.stdout


def _producers(workflow: str) -> dict[str, str]:
    """Artifact name -> the job that uploads it."""
    return {
        str(s["with"]["name"]): job_id
        for job_id, job in jobs(workflow).items()
        for s in steps_using(job, "actions/upload-artifact")
    }


def _runs_branch_code(job_id: str, job: dict[str, Any]) -> bool:
    return job_id == "synth" or any(
        s.get("with", {}).get("ref") == "${{ github.event.pull_request.head.sha }}"
        for s in steps_using(job, "actions/checkout")
    )


def test_jobs_that_run_after_a_failure_read_only_what_finished_jobs_produced() -> None:
    """A job that runs whatever happened before (`!cancelled()`, `always()`) reads an artifact
    only under a condition on its producer's result: `success` when the producer ran the branch's
    code (its workspace is the branch's to write), and at least "it ran" otherwise."""
    preview = jobs("preview.yml")
    producers = _producers("preview.yml")
    seen = 0
    for job_id, job in preview.items():
        job_if = str(job.get("if", ""))
        if "cancelled()" not in job_if and "always()" not in job_if:
            continue
        for download in steps_using(job, "actions/download-artifact"):
            producer = producers[download["with"]["name"]]
            conditions = job_if + " " + str(download.get("if", ""))
            if _runs_branch_code(producer, preview[producer]):
                assert producer in _listed_needs(job), (job_id, producer)
                assert f"needs.{producer}.result == 'success'" in conditions, (job_id, producer)
            else:
                # its own result, or the success of a needed job that ran only after it did
                guards = [
                    n
                    for n in _listed_needs(job)
                    if n == producer
                    or (producer in _needs_closure(preview, n) and _waits_for_success(preview, n))
                ]
                assert guards, (job_id, producer)
                assert any(
                    f"needs.{n}.result == 'success'" in conditions
                    or (n == producer and f"needs.{n}.result == 'failure'" in conditions)
                    for n in guards
                ), (job_id, producer, conditions)
            seen += 1
    assert seen >= 4  # report (preview JSON, offline), comment-offline, comment-preview
    assert preview["comment-preview"]["if"] == (
        "${{ !cancelled() && (needs.report.result == 'success' || "
        "needs.report.result == 'failure') }}"
    )
    assert preview["comment-offline"]["if"] == (
        "${{ !cancelled() && (needs.checks.result == 'success' || "
        "needs.checks.result == 'failure') }}"
    )


def _listed_needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _waits_for_success(workflow_jobs: dict[str, dict[str, Any]], job_id: str) -> bool:
    """The job, and every job it waits for, runs only when what it needs succeeded (no
    `!cancelled()`/`always()` on the way)."""
    return all(
        "cancelled()" not in str(workflow_jobs[j].get("if", ""))
        and "always()" not in str(workflow_jobs[j].get("if", ""))
        for j in {job_id} | _needs_closure(workflow_jobs, job_id)
    )


def _needs_closure(workflow_jobs: dict[str, dict[str, Any]], job_id: str) -> set[str]:
    """Every job `job_id` waits for, directly or not."""
    out: set[str] = set()
    todo = _listed_needs(workflow_jobs[job_id])
    while todo:
        need = todo.pop()
        if need not in out:
            out.add(need)
            todo.extend(_listed_needs(workflow_jobs[need]))
    return out


def test_review_s5_the_reporter_and_gate_run_where_no_branch_code_runs() -> None:
    preview = jobs("preview.yml")
    cloud, report = preview["cloud-preview"], preview["report"]
    cloud_text = yaml.safe_dump(cloud)
    assert "preview_report" not in cloud_text and "gate" not in {
        s.get("id") for s in cloud["steps"]
    }
    # The report job: base checkout only, no credential, the preview JSON as an artifact.
    (checkout,) = steps_using(report, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert "path" not in checkout["with"]
    report_text = yaml.safe_dump(report)
    assert "secrets." not in report_text and "id-token" not in report_text
    assert report.get("environment") is None and report["permissions"] == {"contents": "read"}
    downloads = [s["with"]["name"] for s in steps_using(report, "actions/download-artifact")]
    assert "preview-json-${{ matrix.stack }}" in downloads
    uploads = [s["with"]["name"] for s in steps_using(cloud, "actions/upload-artifact")]
    assert uploads == ["preview-json-${{ matrix.stack }}"]
    # Environments are created fresh (--clear) outside the branch's tree: a committed .venv/ is
    # never run.
    (install,) = [s for s in cloud["steps"] if s.get("name", "").startswith("Install the runtime")]
    assert "rm -rf head/.venv" in install["run"]
    assert 'python -m venv --clear "$venv"' in install["run"]
    assert "head/.venv/bin/python" not in cloud_text
    assert preview["comment-preview"]["needs"] == "report"


def test_review_s2_prod_is_never_previewed_in_the_cloud_from_a_pull_request() -> None:
    preview = jobs("preview.yml")
    previewing = [
        job_id
        for job_id, job in preview.items()
        if any(line.strip().startswith("pulumi preview ") for s in job["steps"]
               for line in s.get("run", "").splitlines())
    ]  # fmt: skip
    assert previewing == ["cloud-preview"]
    cloud = preview["cloud-preview"]
    assert cloud["strategy"]["matrix"]["stack"] == ["staging"]
    assert cloud["environment"] == "preview-${{ matrix.stack }}"
    # prod's cloud preview is plan-prod's, from main, with its read-only role.
    plan = jobs("deploy.yml")["plan-prod"]
    assert any("pulumi preview" in s.get("run", "") for s in plan["steps"])
    # the offline checks still cover both stacks
    assert preview["checks"]["strategy"]["matrix"]["stack"] == ["staging", "prod"]


def test_review_s10_workflow_level_concurrency() -> None:
    preview = load("preview.yml")["concurrency"]
    assert preview == {
        "group": "preview-pr-${{ github.event.pull_request.number }}",
        "cancel-in-progress": True,
    }
    # Drills never cancel one another; deploys are serialised per stack at the job level.
    assert load("drills.yml")["concurrency"] == {"group": "drills", "cancel-in-progress": False}
    assert "concurrency" not in load("deploy.yml")


CODEOWNED = [
    ".github/workflows/deploy.yml",
    ".github/CODEOWNERS",
    "ci/iam/deploy.json",
    "policy/rules.py",
    "Pulumi.yaml",
    "Pulumi.prod.yaml",
    "infra/components/database.py",
    "devtools/iam_policies.py",
    # the gate's code, run by the base checkout and with the deploy and drill credentials: the
    # infra diff, redaction, the preview report and gate, DR and the operations
    "dbplatform/manifest/diff.py",
    "dbplatform/manifest/redact.py",
    "dbplatform/preview/weakened.py",
    "dbplatform/dr/restore_check.py",
    "dbplatform/ops/lock.py",
    "scripts/preview_report.py",
    "scripts/infra_diff.py",
    "scripts/guardrails.py",
    "scripts/restore_check.py",
    "restore-checks.yaml",  # SQL run on restored prod data
    "Makefile",
    "requirements.txt",
    "requirements-deploy.txt",
    "requirements-dev.txt",
]


def _codeowners_match(pattern: str, path: str) -> bool:
    # GitHub CODEOWNERS patterns ("About code owners", gitignore rules): a leading `/` anchors at
    # the root, a trailing `/` matches everything under the directory, `*` does not cross `/`
    # unless the pattern has no slash (then it matches a name at any depth).
    anchored = pattern.startswith("/")
    pat = pattern.lstrip("/")
    if pat.endswith("/"):
        return path.startswith(pat) if anchored else f"/{pat}" in f"/{path}"
    if "/" not in pat and not anchored:
        return any(fnmatch.fnmatchcase(part, pat) for part in path.split("/"))
    return fnmatch.fnmatchcase(path, pat) and "/" not in path[len(pat.split("*")[0]) :]


@pytest.mark.parametrize("path", CODEOWNED)
def test_review_s6_codeowners_cover_the_sensitive_paths(path: str) -> None:
    assert (ROOT / path).is_file(), f"{path} does not exist: keep CODEOWNED current"
    lines = (ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8").splitlines()
    rules = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    # The last matching rule wins (GitHub docs): it must name an owner.
    owners = [r[1:] for r in rules if _codeowners_match(r[0], path)]
    assert owners and owners[-1], path
    assert all(o.startswith("@") for o in owners[-1]), owners[-1]


@pytest.mark.parametrize(
    ("guardrails_rc", "diff_rc", "approved", "passes"),
    [
        ("0", "0", "false", True),
        ("0", "3", "false", False),
        ("0", "3", "true", True),
        ("1", "0", "true", False),
        ("0", "1", "false", False),
    ],
)
def test_offline_gate_covers_guardrails_and_the_infra_diff(
    tmp_path: Path, guardrails_rc: str, diff_rc: str, approved: str, passes: bool
) -> None:
    gate = step(jobs("preview.yml")["checks"], "gate")
    assert gate["env"]["DIFF_RC"] == "${{ steps.offline.outputs.diff_rc }}"
    env = {
        "STACK": "prod",
        "APPROVED": approved,
        "GUARDRAILS_RC": guardrails_rc,
        "DIFF_RC": diff_rc,
    }
    result = _bash(gate["run"], env, tmp_path)
    assert (result.returncode == 0) is passes, result.stdout


def test_the_applied_plan_must_be_the_reviewed_one(tmp_path: Path) -> None:
    check = step(jobs("deploy.yml")["apply-prod"], "report")
    (tmp_path / "build").mkdir()
    plan = tmp_path / "build" / "plan-prod.json"
    plan.write_text('{"resourcePlans": {}}', encoding="utf-8")
    (tmp_path / "build" / "report-full-prod.md").write_text("report", encoding="utf-8")
    digest = subprocess.run(
        ["sha256sum", str(plan)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    env = {"STACK": "prod", "PLAN_SHA256": digest, "PLAN_RC": "0"}
    assert _bash(check["run"], env, tmp_path).returncode == 0
    plan.write_text('{"resourcePlans": {"tampered": {}}}', encoding="utf-8")
    assert _bash(check["run"], env, tmp_path).returncode != 0


# --- approvals, against a stand-in GitHub API ----------------------------------------------

# A stand-in for the GitHub CLI, sourced into the step as a shell function (no process of its
# own per call): answers each API path with canned JSON written under $GH_API by
# `_api_files` (commit statuses per commit, workflow runs and their jobs per run id, a file's
# blob sha per ref, the same blob everywhere by default; an unknown run is a 404), applies the
# caller's --jq filter with jq (as `gh api --jq` does), logs the calls, and can fail a DELETE or
# a POST.
_FAKE_GH = """gh() {
  echo "$*" >> "$GH_LOG"
  local method=GET filter=. path="" file
  while [ $# -gt 0 ]; do
    case "$1" in
      api | --paginate) ;;
      -X) method=$2; shift ;;
      --jq) filter=$2; shift ;;
      -f) shift ;;
      *) path=$1 ;;
    esac
    shift
  done
  if [ "$method" = DELETE ]; then return "${FAKE_DELETE_RC:-0}"; fi
  if [ "$method" = POST ]; then return "${FAKE_POST_RC:-0}"; fi
  case "$path" in
    */commits/*/pulls) file=pulls ;;
    */actions/runs/*/jobs) file=${path%/jobs}; file=jobs/${file##*/} ;;
    */actions/runs/*) file=runs/${path##*/} ;;
    */commits/*/statuses) file=${path%/statuses}; file=statuses/${file##*/} ;;
    */contents/*) file=contents/${path##*ref=} ;;
    */permission) file=permission ;;
    */issues/*) file=issue ;;
    *) echo "unexpected path $path" >&2; return 1 ;;
  esac
  if [ ! -f "$GH_API/$file" ]; then
    case "$file" in
      runs/*) echo "gh: Not Found (HTTP 404)" >&2; return 1 ;;
      jobs/*) file=default-jobs ;;
      statuses/*) file=default-statuses ;;
      contents/*) file=default-contents ;;
      *) file=empty ;;
    esac
  fi
  jq -r "$filter" < "$GH_API/$file"
}
"""


def _api_files(folder: Path, env: dict[str, str]) -> None:
    """The stand-in API's answers, one file per path, from the FAKE_* JSON in `env`."""
    answers = {
        "pulls": env.get("FAKE_PULLS", ""),
        "permission": env.get("FAKE_PERMISSION", ""),
        "issue": env.get("FAKE_ISSUE", ""),
        "empty": "",
        "default-jobs": json.dumps({"jobs": []}),
        "default-statuses": "[]",
        "default-contents": json.dumps({"sha": "blob"}),
    }
    for kind, key, wrap in (
        ("runs", "FAKE_RUNS", None),
        ("jobs", "FAKE_JOBS", None),
        ("statuses", "FAKE_STATUSES", None),
        ("contents", "FAKE_CONTENTS", "sha"),
    ):
        for name, value in json.loads(env.get(key) or "{}").items():
            answers[f"{kind}/{name}"] = json.dumps({wrap: value} if wrap else value)
    for name, text in answers.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


HEAD = "1111111111111111111111111111111111111111"
OLD_HEAD = "2222222222222222222222222222222222222222"
MERGE = "3333333333333333333333333333333333333333"
BASE = "4444444444444444444444444444444444444444"
BOT = "github-actions[bot]"


def _permission(role: str) -> str:
    # The legacy `permission` field maps maintain to write; role_name tells them apart.
    legacy = {"maintain": "write", "triage": "read"}.get(role, role)
    return json.dumps({"permission": legacy, "role_name": role})


RUNS_URL = "https://github.com/acme/dbplatform/actions/runs/"
# Runs of preview.yml the statuses point at (target_url): alice's `labeled` run on the head that
# recorded her approval (101); bob's `unlabeled` run after it (102).
APPROVING_RUN, WITHDRAWING_RUN = "101", "102"


def _status(
    state: str, description: str, creator: str = BOT, run: str | None = APPROVING_RUN
) -> dict[str, Any]:
    status = {
        "context": "dbplatform/allow-destructive",
        "state": state,
        "description": description,
        "creator": {"login": creator},
    }
    if run is not None:
        status["target_url"] = RUNS_URL + run
    return status


def _run(
    number: int,
    actor: str,
    *,
    head: str = HEAD,
    path: str = ".github/workflows/preview.yml",
    event: str = "pull_request",
    pulls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    # The fields of GET /repos/{owner}/{repo}/actions/runs/{run_id} the approval reads: the run's
    # pull requests are the one the preview tests (7) and the one the deploy merged (41), into
    # main, unless `pulls` says otherwise.
    return {
        "run_number": number,
        "path": path,
        "event": event,
        "head_sha": head,
        "triggering_actor": {"login": actor},
        "pull_requests": pulls
        if pulls is not None
        else [{"number": n, "base": {"ref": "main"}} for n in (7, 41)],
    }


def _jobs(*, recorded: bool) -> dict[str, Any]:
    # GET .../actions/runs/{run_id}/jobs: preview.yml's approval job and its steps.
    return {
        "jobs": [
            {
                "name": "allow-destructive approval",
                "steps": [
                    {"name": "Check who applied the label, and on which commit",
                     "conclusion": "success"},
                    {"name": "Approval recorded",
                     "conclusion": "success" if recorded else "skipped"},
                ],
            }
        ]
    }  # fmt: skip


RUNS = {APPROVING_RUN: _run(11, "alice"), WITHDRAWING_RUN: _run(12, "bob")}
JOBS = {APPROVING_RUN: _jobs(recorded=True), WITHDRAWING_RUN: _jobs(recorded=False)}


def _statuses(**by_sha: list[dict[str, Any]]) -> str:
    # Newest first, as GET /repos/{owner}/{repo}/commits/{ref}/statuses returns them.
    return json.dumps({{"head": HEAD, "old": OLD_HEAD}[k]: v for k, v in by_sha.items()})


APPROVED_BY_ALICE = _statuses(head=[_status("success", "allow-destructive by alice")])


def _run_approval(
    tmp_path: Path, workflow: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], str]:
    log = tmp_path / "gh.log"
    log.touch()
    job = jobs(workflow)["approval"]
    script = step(job, "check")["run"]
    check_env = step(job, "check")["env"]
    full_env = {
        "GH_LOG": str(log),
        "REPO": "acme/dbplatform",
        "PR": "7",
        "ALLOW_LABEL": "allow-destructive",
        "RUNS_URL": RUNS_URL,
        "RUN_ID": "103",
        **{
            k: check_env[k]
            for k in (
                "STATUS_CONTEXT",
                "APPROVAL_WORKFLOW",
                "APPROVAL_JOB",
                "RECORD_STEP",
                "PR_LISTING",
            )
        },
        "FAKE_PERMISSION": _permission("admin"),
        "FAKE_STATUSES": "{}",
        "FAKE_RUNS": json.dumps(RUNS),
        "FAKE_JOBS": json.dumps(JOBS),
        "FAKE_CONTENTS": "{}",  # preview.yml the same file at every commit
        "BASE_SHA": BASE,
        "BASE_REF": "main",
        **env,
    }
    full_env["GH_API"] = str(tmp_path / "api")
    _api_files(tmp_path / "api", full_env)
    result = _bash(_FAKE_GH + script, full_env, tmp_path)
    return result, log.read_text(encoding="utf-8")


def _approved(tmp_path: Path, workflow: str, env: dict[str, str]) -> tuple[str, str]:
    result, calls = _run_approval(tmp_path, workflow, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return _outputs(tmp_path)["approved"], calls


_RECORD = f"-X POST repos/acme/dbplatform/statuses/{HEAD} -f state=success"
_REMOVE = "-X DELETE repos/acme/dbplatform/issues/7/labels/allow-destructive"


@pytest.mark.parametrize(
    ("case", "env", "approved", "recorded", "removed"),
    [
        ("owner labels the head", {"ACTION": "labeled"}, "true", True, False),
        (
            "maintainer labels the head",
            {"ACTION": "labeled", "FAKE_PERMISSION": _permission("maintain")},
            "true",
            True,
            False,
        ),
        (
            "writer labels",
            {"ACTION": "labeled", "FAKE_PERMISSION": _permission("write")},
            "false",
            False,
            False,
        ),
        # S-3: a run the labeller merely triggered on this head (re-run, another label) is not
        # an approval; only the `labeled` event's own record is.
        ("another label by the owner", {"ACTION": "labeled", "EVENT_LABEL": "docs"}, "false",
         False, False),
        ("opened with the label, no record", {"ACTION": "opened"}, "false", False, False),
        # closed, pushed, reopened: the label was applied on an older head
        (
            "reopened on a new head",
            {"ACTION": "reopened", "FAKE_STATUSES": _statuses(old=[_status("success",
                                                               "allow-destructive by alice")])},
            "false",
            False,
            True,
        ),
        ("reopened, same head", {"ACTION": "reopened", "FAKE_STATUSES": APPROVED_BY_ALICE},
         "true", False, False),
        ("reopened, preview.yml edited", {"ACTION": "reopened", "FAKE_STATUSES": APPROVED_BY_ALICE,
                                          "FAKE_CONTENTS": json.dumps({HEAD: "blob-edited"})},
         "false", False, True),
        ("another label later", {"ACTION": "unlabeled", "EVENT_LABEL": "docs",
                                 "FAKE_STATUSES": APPROVED_BY_ALICE}, "true", False, False),
        (
            "a status forged by someone else",
            {"ACTION": "opened", "FAKE_STATUSES": _statuses(
                head=[_status("success", "allow-destructive by alice", creator="mallory")])},
            "false",
            False,
            False,
        ),
        (
            "the approval was withdrawn",
            {"ACTION": "opened", "FAKE_STATUSES": _statuses(head=[
                _status("failure", "allow-destructive withdrawn by bob", run=WITHDRAWING_RUN),
                _status("success", "allow-destructive by alice")])},
            "false",
            False,
            False,
        ),
        (
            "the approver lost the role",
            {"ACTION": "opened", "FAKE_STATUSES": APPROVED_BY_ALICE,
             "FAKE_PERMISSION": _permission("write")},
            "false",
            False,
            False,
        ),
    ],
)  # fmt: skip
def test_preview_approval_is_an_owners_labeled_event_on_the_head_commit(
    tmp_path: Path, case: str, env: dict[str, str], approved: str, *, recorded: bool, removed: bool
) -> None:
    full = {
        "HAS_LABEL": "true",
        "HEAD_SHA": HEAD,
        "EVENT_LABEL": "allow-destructive",
        "SENDER": "alice",
        **env,
    }
    got, calls = _approved(tmp_path, "preview.yml", full)
    assert got == approved, case
    assert (_RECORD in calls) is recorded, calls
    if recorded:
        assert "-f description=allow-destructive by alice" in calls
    assert (_REMOVE in calls) is removed, calls


def test_preview_approval_is_withdrawn_by_new_commits(tmp_path: Path) -> None:
    env = {"HAS_LABEL": "true", "ACTION": "synchronize", "HEAD_SHA": HEAD, "SENDER": "bob"}
    got, calls = _approved(tmp_path, "preview.yml", env)
    assert got == "false"
    assert _REMOVE in calls


def test_removing_the_label_withdraws_the_recorded_approval(tmp_path: Path) -> None:
    env = {
        "HAS_LABEL": "false",
        "ACTION": "unlabeled",
        "EVENT_LABEL": "allow-destructive",
        "HEAD_SHA": HEAD,
        "SENDER": "bob",
    }
    got, calls = _approved(tmp_path, "preview.yml", env)
    assert got == "false"
    assert f"-X POST repos/acme/dbplatform/statuses/{HEAD} -f state=failure" in calls


@pytest.mark.parametrize(
    "env",
    [
        {"ACTION": "synchronize", "FAKE_DELETE_RC": "1", "SENDER": "bob"},
        {"ACTION": "labeled", "EVENT_LABEL": "allow-destructive", "SENDER": "alice",
         "FAKE_POST_RC": "1"},
    ],
    ids=["label removal", "approval record"],
)  # fmt: skip
def test_a_failed_removal_or_record_fails_the_job(tmp_path: Path, env: dict[str, str]) -> None:
    full = {"HAS_LABEL": "true", "HEAD_SHA": HEAD, "EVENT_LABEL": "", **env}
    result, _ = _run_approval(tmp_path, "preview.yml", full)
    assert result.returncode != 0
    assert not (tmp_path / "github_output").exists() or "approved=true" not in (
        tmp_path / "github_output"
    ).read_text(encoding="utf-8")
    if env["ACTION"] == "synchronize":
        assert "::error title=Stale approval not removed::" in result.stdout


def _pulls(merge: str = MERGE, base: str = "main", head: str = HEAD) -> str:
    return json.dumps(
        [
            # a still-open pull request that contains the commit too: never the one approved
            {"number": 5, "merged_at": None, "merge_commit_sha": MERGE, "base": {"ref": "main"},
             "head": {"sha": OLD_HEAD}},
            {"number": 41, "merged_at": "2026-12-01T10:00:00Z", "merge_commit_sha": merge,
             "base": {"ref": base, "sha": BASE}, "head": {"sha": head}},
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("case", "env", "approved"),
    [
        ("owner approved the merged head", {}, "true"),
        ("maintainer", {"FAKE_PERMISSION": _permission("maintain")}, "true"),
        ("writer", {"FAKE_PERMISSION": _permission("write")}, "false"),
        ("label removed", {"FAKE_ISSUE": json.dumps({"labels": []})}, "false"),
        (
            "approval recorded on an older head",
            {"FAKE_STATUSES": _statuses(old=[_status("success", "allow-destructive by alice")])},
            "false",
        ),
        (
            "approval withdrawn",
            {"FAKE_STATUSES": _statuses(head=[_status("failure", "allow-destructive withdrawn",
                                                      run=WITHDRAWING_RUN),
                                              _status("success", "allow-destructive by alice")])},
            "false",
        ),
        (
            "forged record",
            {"FAKE_STATUSES": _statuses(head=[_status("success", "allow-destructive by alice",
                                                      creator="mallory")])},
            "false",
        ),
        ("another merge commit", {"FAKE_PULLS": _pulls(merge=OLD_HEAD)}, "false"),
        # the merged pull request edited preview.yml: its runs ran its own copy, which could
        # record any approval (security re-review), so none of them counts
        ("preview.yml edited", {"FAKE_CONTENTS": json.dumps({HEAD: "blob-edited"})}, "false"),
        ("preview.yml differs at the base", {"FAKE_CONTENTS": json.dumps({BASE: "blob-new"})},
         "false"),
        ("preview.yml unreadable", {"FAKE_CONTENTS": json.dumps({HEAD: ""})}, "false"),
        ("merged into another branch", {"FAKE_PULLS": _pulls(base="release")}, "false"),
        ("dispatch by an owner", {"EVENT": "workflow_dispatch", "DISPATCH_ALLOW": "true"}, "true"),
        (
            "dispatch by a writer",
            {
                "EVENT": "workflow_dispatch",
                "DISPATCH_ALLOW": "true",
                "FAKE_PERMISSION": _permission("write"),
            },
            "false",
        ),
        (
            "dispatch without the input",
            {"EVENT": "workflow_dispatch", "DISPATCH_ALLOW": "false"},
            "false",
        ),
    ],
)  # fmt: skip
def test_deploy_approval_is_the_record_on_exactly_the_merged_head(
    tmp_path: Path, case: str, env: dict[str, str], approved: str
) -> None:
    full = {
        "EVENT": "push",
        "ACTOR": "alice",
        "SHA": MERGE,
        "BASE_REF": "main",
        "DISPATCH_ALLOW": "",
        "FAKE_PULLS": _pulls(),
        "FAKE_ISSUE": json.dumps({"labels": [{"name": "allow-destructive"}]}),
        "FAKE_STATUSES": APPROVED_BY_ALICE,
        **env,
    }
    got, calls = _approved(tmp_path, "deploy.yml", full)
    assert got == approved, case
    if case.startswith(("owner", "maintainer", "writer", "approval", "forged")):
        assert f"repos/acme/dbplatform/commits/{HEAD}/statuses" in calls


# Statuses any workflow with `statuses: write` could write on the head commit, each naming alice
# (an admin) as the approver; what they point at (target_url) decides whether they count.
_FORGED_RUNS = {
    "201": _run(21, "alice", path=".github/workflows/other.yml"),  # another workflow
    "202": _run(22, "alice", head=OLD_HEAD),  # a run of another commit
    "203": _run(23, "alice", event="push"),  # not a pull request's run
    "204": _run(24, "mallory"),  # a run somebody else triggered
    "205": _run(25, "alice"),  # alice's run that recorded nothing (she added another label)
    # the same head in a second pull request into a branch with its own preview.yml: that run
    # ran the other branch's workflow (security re-review)
    "206": _run(26, "alice", pulls=[{"number": 9, "base": {"ref": "evil"}}]),
    "207": _run(
        27,
        "alice",
        pulls=[
            {"number": n, "base": {"ref": r}} for n, r in ((7, "main"), (41, "main"), (9, "evil"))
        ],
    ),
    "208": _run(28, "alice", pulls=[]),  # a fork's run lists no pull request
    "209": _run(29, "alice", pulls=[{"number": 5, "base": {"ref": "main"}}]),  # another one
}
_FORGED_JOBS = {run: _jobs(recorded=run != "205") for run in _FORGED_RUNS}


def _reading_records(workflow: str) -> dict[str, str]:
    """The event of a run that reads the approval records: a pull request opened with the label
    (preview.yml), or the push of its merge (deploy.yml)."""
    if workflow == "preview.yml":
        return {"HAS_LABEL": "true", "ACTION": "opened", "HEAD_SHA": HEAD, "SENDER": "bob",
                "EVENT_LABEL": ""}  # fmt: skip
    return {
        "EVENT": "push",
        "ACTOR": "bob",
        "SHA": MERGE,
        "BASE_REF": "main",
        "DISPATCH_ALLOW": "",
        "FAKE_PULLS": _pulls(),
        "FAKE_ISSUE": json.dumps({"labels": [{"name": "allow-destructive"}]}),
    }


_FORGERIES = [
        ("the approving run's record", [_status("success", "allow-destructive by alice")], True),
        ("no target_url", [_status("success", "allow-destructive by alice", run=None)], False),
        ("another workflow's run", [_status("success", "allow-destructive by alice", run="201")],
         False),
        ("a run of another commit", [_status("success", "allow-destructive by alice", run="202")],
         False),
        ("a push run", [_status("success", "allow-destructive by alice", run="203")], False),
        ("a run someone else triggered",
         [_status("success", "allow-destructive by alice", run="204")], False),
        ("the approver's run that recorded nothing",
         [_status("success", "allow-destructive by alice", run="205")], False),
        ("a run of another pull request of that head, into another branch",
         [_status("success", "allow-destructive by alice", run="206")], False),
        ("a run that also lists a pull request into another branch",
         [_status("success", "allow-destructive by alice", run="207")], False),
        ("a run of another pull request into main",
         [_status("success", "allow-destructive by alice", run="209")], False),
        ("a run that does not exist", [_status("success", "allow-destructive by alice", run="999")],
         False),
        ("names another approver than the run's",
         [_status("success", "allow-destructive by bob")], False),
        ("another repository's run",
         [{**_status("success", "allow-destructive by alice"),
           "target_url": "https://github.com/evil/fork/actions/runs/101"}], False),
        # the label was removed (run 102), then a status re-cites the older approving run
        ("replayed after a withdrawal",
         [_status("success", "allow-destructive by alice"),
          _status("failure", "allow-destructive withdrawn by bob", run=WITHDRAWING_RUN),
          _status("success", "allow-destructive by alice")], False),
        # a forged withdrawal can only withdraw (fail closed); a forged success newer than the
        # real one but pointing at a bad run changes nothing
        ("a bad record beside the real one",
         [_status("success", "allow-destructive by alice", run="204"),
          _status("success", "allow-destructive by alice")], True),
]  # fmt: skip
# deploy.yml runs the same approver_of (asserted below, byte for byte, with the same settings), so
# it is run here on the cases its own wiring can change: the commit it reads (the merge's, after
# the merge), the pull request listing (optional after the merge), and an accepted and a refused
# record. The other forgeries are refused by the function's own checks, proven on preview.yml.
_DEPLOY_CASES = {
    "the approving run's record",
    "a run of another commit",
    "a run of another pull request of that head, into another branch",
    "a run that also lists a pull request into another branch",
    "a run of another pull request into main",
    "names another approver than the run's",
}
assert {row[0] for row in _FORGERIES} >= _DEPLOY_CASES, "a deploy case names no forgery"


@pytest.mark.parametrize(
    ("workflow", "case", "statuses", "approved"),
    [
        pytest.param(workflow, *row, id=f"{row[0]}-{workflow}")
        for workflow in ("preview.yml", "deploy.yml")
        for row in _FORGERIES
        if workflow == "preview.yml" or row[0] in _DEPLOY_CASES
    ],
)
def test_an_approval_record_counts_only_from_the_approving_run_of_preview_yml(
    tmp_path: Path, workflow: str, case: str, statuses: list[dict[str, Any]], approved: bool
) -> None:
    """Any workflow on any branch with `statuses: write` can write `dbplatform/allow-destructive`
    as github-actions[bot] on any commit. A record counts only if its target_url is a run of
    preview.yml for a pull request on exactly that commit, triggered by the approver it names,
    whose approval job's record step succeeded; the newest such run decides."""
    env = _reading_records(workflow) | {
        "FAKE_STATUSES": _statuses(head=statuses),
        "FAKE_RUNS": json.dumps(RUNS | _FORGED_RUNS),
        "FAKE_JOBS": json.dumps(JOBS | _FORGED_JOBS),
    }
    got, calls = _approved(tmp_path, workflow, env)
    assert got == str(approved).lower(), case
    assert not re.search(r"-X POST repos/\S+/statuses", calls), calls  # nothing re-recorded


@pytest.mark.parametrize(("workflow", "approved"), [("preview.yml", False), ("deploy.yml", True)])
def test_a_run_listing_no_pull_request_counts_only_after_the_merge(
    tmp_path: Path, workflow: str, approved: bool
) -> None:
    """GitHub empties a run's pull_requests once its pull request is merged (or closed): the
    deploy, which reads after the merge, accepts that (PR_LISTING=optional); the preview, while
    the pull request is open, does not (a fork's run lists none either)."""
    env = _reading_records(workflow) | {
        "FAKE_STATUSES": _statuses(head=[_status("success", "allow-destructive by alice")]),
        "FAKE_RUNS": json.dumps({APPROVING_RUN: _run(11, "alice", pulls=[])}),
    }
    got, _ = _approved(tmp_path, workflow, env)
    assert got == str(approved).lower()


def _approver_of(workflow: str) -> str:
    script = step(jobs(workflow)["approval"], "check")["run"]
    start = script.index("approver_of() {")
    return script[start : script.index("\n}\n", start)]


def test_the_approval_record_points_at_its_run_and_both_workflows_check_it_alike() -> None:
    approval = jobs("preview.yml")["approval"]
    check = step(approval, "check")
    # the record's target_url is this run; the run-level evidence is the step below
    assert '-f target_url="$RUNS_URL$RUN_ID"' in check["run"]
    assert check["env"]["RUN_ID"] == "${{ github.run_id }}"
    runs_url = "${{ github.server_url }}/${{ github.repository }}/actions/runs/"
    assert check["env"]["RUNS_URL"] == runs_url
    (recorded,) = [s for s in approval["steps"] if s.get("name") == check["env"]["RECORD_STEP"]]
    assert recorded["if"] == "steps.check.outputs.recorded == 'true'"
    assert approval["name"] == check["env"]["APPROVAL_JOB"]
    assert check["env"]["APPROVAL_WORKFLOW"] == ".github/workflows/preview.yml"
    assert approval["permissions"]["actions"] == "read"
    deploy = jobs("deploy.yml")["approval"]
    for key in ("STATUS_CONTEXT", "APPROVAL_WORKFLOW", "APPROVAL_JOB", "RECORD_STEP", "RUNS_URL"):
        assert step(deploy, "check")["env"][key] == check["env"][key], key
    assert deploy["permissions"]["actions"] == "read"
    assert _approver_of("preview.yml") == _approver_of("deploy.yml")


def test_the_labeled_run_records_the_approval_with_its_run_as_target(tmp_path: Path) -> None:
    env = {"HAS_LABEL": "true", "ACTION": "labeled", "EVENT_LABEL": "allow-destructive",
           "HEAD_SHA": HEAD, "SENDER": "alice"}  # fmt: skip
    got, calls = _approved(tmp_path, "preview.yml", env)
    assert got == "true"
    assert f"-f target_url={RUNS_URL}103" in calls
    assert _outputs(tmp_path)["recorded"] == "true"
    # any other run: nothing recorded, so its record step is skipped
    (tmp_path / "other").mkdir()
    other = dict(env, ACTION="synchronize", EVENT_LABEL="")
    _approved(tmp_path / "other", "preview.yml", other)
    assert _outputs(tmp_path / "other")["recorded"] == "false"


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
        # `exec`: the tool is the step's process, so a cancellation's SIGINT reaches it
        assert any(line.removeprefix("exec ").startswith(command) for line in lines), job_id
        uploads = steps_using(job, "actions/upload-artifact")
        assert uploads and uploads[0]["if"] == "always()", job_id
    assert len(crons) == 2
    alert = doc["jobs"]["alert"]
    assert alert["if"] == "failure()" and set(alert["needs"]) == set(commands)


def test_jobs_install_only_the_hash_pinned_runtime() -> None:
    """No `make setup`, no requirements-dev.txt (moto, Flask, test tooling) in any CI job."""
    installs = []
    for name in NAMES:
        for line in command_lines(name):
            assert "make setup" not in line and "requirements-dev" not in line, (name, line)
            if "pip install" in line:
                installs.append(line)
                assert "--require-hashes -r" in line and "requirements-deploy.txt" in line, line
    assert len(installs) >= 6


def test_the_runtime_lock_pins_every_runtime_requirement_with_a_hash() -> None:
    lock = {}
    for line in (ROOT / "requirements-deploy.txt").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        pin, *hashes = line.split()
        name, version = pin.split("==")
        assert hashes and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes), line
        lock[name] = version
    wanted = {}
    for path in (ROOT / "requirements.txt", ROOT / "policy" / "requirements.txt"):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line)
            if match:
                name = re.sub(r"\[.*\]", "", match.group(1))
                wanted[re.sub(r"[-_.]+", "-", name).lower()] = match.group(2)
    for name, version in wanted.items():
        assert lock.get(name) == version, f"{name}=={version} is not locked (devtools/lock_deploy)"
    assert not {"moto", "pytest", "hypothesis", "flask"} & lock.keys()


def test_jobs_that_run_the_branchs_code_hold_no_credential() -> None:
    """Security review C-1: only a job behind an environment runs PR code with credentials."""
    for job_id, job in jobs("preview.yml").items():
        text = yaml.safe_dump(job)
        holds = "secrets." in text or job.get("permissions", {}).get("id-token") == "write"
        writes = any(v == "write" for v in job.get("permissions", {}).values())
        checks_out_head = job_id == "synth" or any(
            s.get("with", {}).get("ref") == "${{ github.event.pull_request.head.sha }}"
            for s in steps_using(job, "actions/checkout")
        )
        if checks_out_head:
            assert not writes or job_id == "cloud-preview", job_id
        if holds:
            assert str(job.get("environment", "")).startswith("preview-"), job_id
        if writes and not holds:  # the comment and approval jobs run no checked-out code
            assert not steps_using(job, "actions/checkout"), job_id
    checks = jobs("preview.yml")["checks"]
    (checkout,) = steps_using(checks, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"


def test_no_workflow_finding_from_zizmor_offline() -> None:
    zizmor = shutil.which("zizmor", path=str(BIN))
    if not zizmor:
        pytest.fail("zizmor is not installed: run `make setup` (requirements-dev.txt)")
    proc = subprocess.run(
        [zizmor, "--offline", "--no-progress", "--format", "plain", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        env=offline_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout + proc.stderr


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


def test_offline_checks_run_the_base_tooling_on_the_branch_manifest(tmp_path: Path) -> None:
    """The `checks` job end to end: base checkout + the branch's manifest (data) -> guardrails,
    infra diff, the offline comment, and a gate that refuses an unapproved stateful delete."""
    job = jobs("preview.yml")["checks"]
    for entry in ROOT.iterdir():  # the base checkout, without a build/ of its own
        if entry.name not in ("build", ".git"):
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / "build").mkdir()
    head = json.loads((ROOT / "tests" / "golden" / "prod.json").read_text(encoding="utf-8"))
    primary = next(
        r
        for r in head["resources"]
        if r["type"] == "aws:rds/instance:Instance" and not r["inputs"].get("replicateSourceDb")
    )
    head["resources"] = [r for r in head["resources"] if r is not primary]
    (tmp_path / "build" / "synth-head-prod.json").write_text(json.dumps(head), encoding="utf-8")
    env = {
        "STACK": "prod",
        "APPROVED": "false",
        "HEAD_SHA": "0123456789abcdef0123456789abcdef01234567",
        "PYTHONPATH": str(tmp_path),
        # the symlinked checkout is this one on purpose (infra.config.project_dir)
        "DBPLATFORM_PROJECT_DIR": str(tmp_path),
    }
    offline = _bash(step(job, "offline")["run"], env, tmp_path)
    assert offline.returncode == 0, offline.stderr
    outputs = _outputs(tmp_path)
    assert outputs["diff_rc"] == "3" and outputs["guardrails_rc"] == "0"
    comment_step = next(s for s in job["steps"] if s.get("name") == "Offline comment")
    made = _bash(comment_step["run"], env, tmp_path)
    assert made.returncode == 0, made.stderr
    comment = (tmp_path / "build" / "comment-prod.md").read_text(encoding="utf-8")
    assert comment.startswith("<!-- dbplatform-preview:prod -->")
    assert "commit `0123456789ab`" in comment and primary["name"] in comment
    # the diff drops the primary: the titles and a line above them say so without opening them
    assert re.search(
        r"<summary>Offline guardrails: (no rule fails|\d+ advisory rules? fails?)</summary>",
        comment,
    ), comment
    assert (
        "<summary>Offline infra diff against the base branch: 1 stateful resource at risk"
        in comment
    )
    assert (
        "⚠️ **The offline infra diff against the base branch flags 1 stateful resource at risk"
        in comment
    )
    gate = _bash(step(job, "gate")["run"], dict(env, GUARDRAILS_RC="0", DIFF_RC="3"), tmp_path)
    assert gate.returncode == 1 and "allow-destructive" in gate.stdout
