"""The least-privilege policies in ci/iam (devtools/iam_policies.py), against the synth manifests
and botocore's service models: every action the program needs is granted, every action is a real
AWS operation, nothing is broader than that, and the drill role reaches only drill instances."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from devtools import iam_policies
from devtools.iam_policies import TYPE_OPERATIONS, declared_types, policies

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "tests" / "golden").glob("*.json"))
POLICIES = {
    p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "ci/iam").glob("*.json")
}
# IAM prefix -> botocore service (the inverse of iam_policies._IAM_PREFIX, plus the state bucket).
SERVICES = {prefix: service for service, prefix in iam_policies._IAM_PREFIX.items()} | {"s3": "s3"}
# IAM actions named unlike an operation (Service Authorization Reference): iam:PassRole is
# "permission only"; s3:ListBucket grants the ListObjects/ListObjectsV2 operations.
PERMISSION_ONLY = {"iam:PassRole": None, "s3:ListBucket": "ListObjectsV2"}


def actions(policy: dict[str, Any], effect: str = "Allow") -> set[str]:
    out: set[str] = set()
    for st in policy["Statement"]:
        if st["Effect"] == effect:
            out.update([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    return out


def test_committed_policies_are_what_the_program_declares_now() -> None:
    assert set(POLICIES) == {
        "preview.json",
        "deploy.json",
        "drill.json",
        "operator.json",
        "boundary.json",
    }
    assert iam_policies.main(["--check"]) == 0
    assert policies(MANIFESTS) == POLICIES


@pytest.mark.parametrize("name", ["preview.json", "deploy.json", "drill.json", "operator.json"])
def test_every_action_is_a_real_operation_of_its_service(name: str) -> None:
    session = botocore.session.get_session()
    models: dict[str, set[str]] = {}
    for act in actions(POLICIES[name]) | actions(POLICIES[name], "Deny"):
        assert "*" not in act, f"{name}: wildcard action {act}"
        prefix, operation = act.split(":")
        if act in PERMISSION_ONLY:
            if PERMISSION_ONLY[act] is None:
                continue
            operation = str(PERMISSION_ONLY[act])
        service = SERVICES[prefix]
        if service not in models:
            models[service] = set(session.get_service_model(service).operation_names)
        assert operation in models[service], f"{name}: {act} is not an operation of {service}"


def test_every_type_the_program_declares_is_covered() -> None:
    types = declared_types(MANIFESTS)
    assert types and types <= TYPE_OPERATIONS.keys(), sorted(types - TYPE_OPERATIONS.keys())
    preview, deploy = actions(POLICIES["preview.json"]), actions(POLICIES["deploy.json"])
    for t in types:
        service, reads, writes = TYPE_OPERATIONS[t]
        for op in reads:
            act = iam_policies.action(service, op)
            # withheld on purpose (iam_policies.PREVIEW_WITHHELD): a secret's value
            assert (act in preview) is (act not in iam_policies.PREVIEW_WITHHELD), (t, op)
        for op in reads + writes:
            assert iam_policies.action(service, op) in deploy, (t, op)


def test_nothing_broader_than_the_program_needs() -> None:
    types = declared_types(MANIFESTS)
    needed = {
        iam_policies.action(s, o)
        for s, ops in iam_policies.operations(types, write=True).items()
        for o in ops
    }
    state = {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    state |= {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "iam:PassRole"}
    # What CloudFormation does for the SAR rotation stack, granted only via CloudFormation.
    via_cfn = iam_policies.VIA_CLOUDFORMATION
    assert actions(POLICIES["deploy.json"]) - needed - state - via_cfn == set()
    for st in POLICIES["deploy.json"]["Statement"]:
        extra = set(_listed(st["Action"])) - needed - state
        if st["Effect"] == "Allow" and extra:
            assert extra <= via_cfn, st["Sid"]
            assert st["Condition"]["ForAnyValue:StringEquals"] == {
                "aws:CalledVia": ["cloudformation.amazonaws.com"]
            }, st["Sid"]
    preview = actions(POLICIES["preview.json"]) - state
    assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) for a in preview), preview
    for statement in POLICIES["preview.json"]["Statement"]:
        for act in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        ):
            assert not act.startswith(("s3:Put", "s3:Delete", "kms:Encrypt")), act


def test_ci_never_administers_keys() -> None:
    for name in ("deploy.json", "drill.json", "operator.json"):
        denied = actions(POLICIES[name], "Deny")
        assert {"kms:ScheduleKeyDeletion", "kms:DisableKey"} <= denied, name


def test_the_drill_role_reaches_only_drill_instances() -> None:
    drill = POLICIES["drill.json"]
    writes = [
        st
        for st in drill["Statement"]
        if st["Effect"] == "Allow"
        and any(a in ("rds:DeleteDBInstance", "rds:ModifyDBInstance") for a in st["Action"])
    ]
    assert len(writes) == 1
    (st,) = writes
    assert st["Resource"] == [
        "arn:${Partition}:rds:*:${AccountId}:db:dbplatform-*-rc-????????t??????z-??????",
        "arn:${Partition}:rds:*:${AccountId}:db:dbplatform-*-drill-??????-pg",
    ]
    assert st["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/dbplatform:purpose": ["restore-check", "dr-drill", "dr-rebuild"]
        }
    }
    restores = [st for st in drill["Statement"] if st["Sid"] == "RestoreOnlyDrillInstances"]
    assert restores[0]["Condition"]["StringEquals"]["aws:RequestTag/dbplatform:purpose"]
    # The restore-check and DR identifiers the code generates fall under these prefixes.
    from infra.naming import Names, drill_stack

    assert Names("prod").restore_check_instance("run1").startswith("dbplatform-prod-rc-")
    assert Names(drill_stack("prod", "run1")).primary.startswith("dbplatform-prod-drill-")
    (passrole,) = [st for st in drill["Statement"] if st["Action"] == ["iam:PassRole"]]
    assert passrole["Resource"].endswith(":role/dbplatform-*-backup")
    assert "Deny" not in {st["Effect"] for st in drill["Statement"] if "rds:" in str(st["Action"])}


def test_the_drill_role_tags_only_what_has_the_exact_shape_of_a_drills_name() -> None:
    """Tags given at creation are authorized as rds:AddTagsToResource, which has no key telling
    a create from a later tagging; an AWS Backup restore gives the instance the source's tags,
    which the drill then tags. So the names decide: only the exact shapes the tool generates,
    which nothing the program declares has (a replica `rc-1`, a stack with `drill` in it)."""
    from infra.naming import Names, drill_stack

    drill = POLICIES["drill.json"]
    arn = "arn:aws:rds:us-west-2:123456789012:{}:{}"
    tag = {"aws:RequestTag/dbplatform:purpose": "dr-drill"}
    backup_restored = {**tag, "aws:ResourceTag/stack": "prod"}  # the source's tags
    generated = [
        arn.format("db", Names("prod").restore_check_instance("20261202t142100z-3f10f0")),
        arn.format("db", Names(drill_stack("prod", "3f10f0")).primary),
        arn.format("pg", Names(drill_stack("prod", "3f10f0")).parameter_group("postgres16")),
    ]
    for resource in generated:
        assert _ask(drill, "rds:AddTagsToResource", resource, tag), resource
    for resource in generated[:2]:
        assert _ask(drill, "rds:AddTagsToResource", resource, backup_restored), resource
    declared = [
        Names("prod").primary,
        Names("prod").replica("rc-1"),
        Names("prod").replica("drill-1"),
        Names("a-drill-b").primary,
        Names("ops-rc-2026").primary,
    ]
    for ident in declared:
        assert not _ask(drill, "rds:AddTagsToResource", arn.format("db", ident), tag), ident
        assert not _ask(drill, "rds:DeleteDBInstance", arn.format("db", ident), {}), ident
    other_pg = arn.format("pg", Names("prod").parameter_group("postgres16"))
    assert not _ask(drill, "rds:AddTagsToResource", other_pg, tag)
    purpose = {"aws:ResourceTag/dbplatform:purpose": "dr-drill"}
    assert not _ask(drill, "rds:DeleteDBParameterGroup", other_pg, purpose)
    assert _ask(drill, "rds:DeleteDBParameterGroup", generated[2], purpose)


# A small evaluator of the IAM policy language, for the cases the security review (S-1, S-7, S-9)
# named: explicit Deny wins, else an Allow whose Action, Resource and every Condition match (IAM
# User Guide, "Policy evaluation logic"; condition operators from "IAM JSON policy elements:
# Condition operators": a key absent from the request fails StringEquals and ArnEquals, passes
# ...IfExists and the negated operators, and ForAllValues passes when every value is listed).
PLACEHOLDERS = {
    "${Partition}": "aws",
    "${AccountId}": "123456789012",
    "${Stack}": "prod",
    "${StateBucket}": "state",
    "${SecretsProviderKeyId}": "k",
}


def _fill(text: str) -> str:
    for k, v in PLACEHOLDERS.items():
        text = text.replace(k, v)
    return text


def _listed(value: Any) -> list[str]:
    return [_fill(str(v)) for v in (value if isinstance(value, list) else [value])]


def _condition_holds(op: str, key: str, expected: Any, ctx: dict[str, Any]) -> bool:
    wanted = _listed(expected)
    if op.startswith("ForAllValues:"):
        return all(v in wanted for v in ctx.get(key, []))
    if op.startswith("ForAnyValue:"):
        return any(v in wanted for v in ctx.get(key, []))
    if op == "Null":  # "true": the key is absent from the request; "false": it is present
        return (key not in ctx) == (str(expected).lower() == "true")
    # Negated operators (StringNotEquals, ArnNotLike, ...) hold when the key is absent.
    negated = "Not" in op.removesuffix("IfExists")
    present = key in ctx
    if not present:
        return negated or op.endswith("IfExists")
    got = str(ctx[key]).lower() if op == "Bool" else str(ctx[key])
    matched = any(fnmatch.fnmatchcase(got, w) if "Like" in op else got == w for w in wanted)
    return not matched if negated else matched


def _matches(st: dict[str, Any], act: str, resource: str, ctx: dict[str, Any]) -> bool:
    if not any(fnmatch.fnmatchcase(act, a) for a in _listed(st["Action"])):
        return False
    if "NotResource" in st:
        if any(fnmatch.fnmatchcase(resource, r) for r in _listed(st["NotResource"])):
            return False
    elif not any(fnmatch.fnmatchcase(resource, r) for r in _listed(st["Resource"])):
        return False
    return all(
        _condition_holds(op, key, expected, ctx)
        for op, keys in st.get("Condition", {}).items()
        for key, expected in keys.items()
    )


def _tags(**extra: str) -> dict[str, Any]:
    tags = {"project": "dbplatform", "stack": "prod", **extra}
    ctx: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    ctx["aws:TagKeys"] = list(tags)
    return ctx


def _ask(policy: dict[str, Any], act: str, resource: str, ctx: dict[str, Any]) -> bool:
    statements = policy["Statement"]
    if any(st["Effect"] == "Deny" and _matches(st, act, resource, ctx) for st in statements):
        return False
    return any(st["Effect"] == "Allow" and _matches(st, act, resource, ctx) for st in statements)


ROLE = "arn:aws:iam::123456789012:role/dbplatform-prod-rds-monitoring"
BOUNDARY = "arn:aws:iam::123456789012:policy/dbplatform-service-role-boundary"
MONITORING = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"


@pytest.mark.parametrize("name", ["deploy.json", "operator.json"])
def test_review_s1_no_escalation_to_account_admin(name: str) -> None:
    policy = POLICIES[name]
    boundary = {"iam:PermissionsBoundary": BOUNDARY}
    # A role: only with the boundary and the stack's tags (StringEqualsIfExists let both go).
    assert _ask(policy, "iam:CreateRole", ROLE, _tags() | boundary)
    assert not _ask(policy, "iam:CreateRole", ROLE, _tags())
    assert not _ask(policy, "iam:CreateRole", ROLE, boundary)
    assert not _ask(policy, "iam:CreateRole", ROLE, _tags(admin="x") | boundary)
    # Only the managed policies the program attaches.
    assert _ask(policy, "iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": MONITORING})
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    assert not _ask(policy, "iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": admin})
    assert not _ask(policy, "iam:AttachRolePolicy", ROLE, {})
    # Trust policies, boundaries and key policies are not CI's to rewrite.
    for act in ("iam:UpdateAssumeRolePolicy", "iam:DeleteRolePermissionsBoundary"):
        assert not _ask(policy, act, ROLE, {})
    key = "arn:aws:kms:us-east-1:123456789012:key/abc"
    owned = {"aws:ResourceTag/project": "dbplatform", "aws:ResourceTag/stack": "prod"}
    assert not _ask(policy, "kms:PutKeyPolicy", key, owned)
    assert not _ask(
        policy, "kms:CreateKey", "*", _tags() | {"kms:BypassPolicyLockoutSafetyCheck": "true"}
    )
    assert _ask(policy, "kms:CreateKey", "*", _tags())
    # Tagging: only as part of a create, or what the stack already owns; never a foreign VPC.
    vpc = "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0abc"
    assert not _ask(policy, "ec2:CreateTags", vpc, _tags())
    assert _ask(policy, "ec2:CreateTags", vpc, _tags() | {"ec2:CreateAction": "CreateVpc"})
    assert _ask(policy, "ec2:CreateTags", vpc, owned)
    assert not _ask(policy, "ec2:DeleteVpc", vpc, {})
    # A database without the stack's tags (or with an extra tag key) is not created.
    db = "arn:aws:rds:us-east-1:123456789012:db:anything"
    assert _ask(policy, "rds:CreateDBInstance", db, _tags(tier="gold"))
    assert not _ask(policy, "rds:CreateDBInstance", db, {})
    assert not _ask(policy, "rds:CreateDBInstance", db, _tags(**{"access-team": "admins"}))


def test_the_boundary_stops_roles_at_rds_backup_and_logs() -> None:
    boundary = POLICIES["boundary.json"]
    anywhere = "arn:aws:iam::123456789012:role/x"
    assert _ask(boundary, "backup:StartBackupJob", "*", {})
    for act in ("iam:CreateRole", "iam:AttachRolePolicy", "s3:GetObject", "kms:PutKeyPolicy"):
        assert not _ask(boundary, act, anywhere, {}), act
    # the VPC flow logs role delivers into its own group, no other
    flow_logs = "arn:aws:logs:us-east-1:123456789012:log-group:/dbplatform/prod/vpc-flow-logs:*"
    assert _ask(boundary, "logs:PutLogEvents", flow_logs, {})
    other = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/x:*"
    assert not _ask(boundary, "logs:PutLogEvents", other, {})


def test_attachable_policies_are_the_ones_the_program_attaches() -> None:
    attached = {
        str(r["inputs"]["policyArn"])
        for path in MANIFESTS
        for r in json.loads(path.read_text(encoding="utf-8"))["resources"]
        if r["type"] == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    }
    assert MONITORING in attached
    (st,) = [
        st
        for st in POLICIES["deploy.json"]["Statement"]
        if st["Sid"] == "AttachOnlyTheProgramsManagedPolicies"
    ]
    assert {_fill(a) for a in st["Condition"]["ArnEquals"]["iam:PolicyARN"]} == attached


def test_every_condition_key_is_valid_for_every_action_of_its_statement() -> None:
    # Service Authorization Reference, recorded in iam_policies.CONDITION_KEYS. aws:ResourceTag is
    # a property of the resource type (each service's Resource types table), not of the action.
    for name, policy in POLICIES.items():
        for st in policy["Statement"]:
            for keys in st.get("Condition", {}).values():
                for key in keys:
                    if key.startswith("aws:ResourceTag/") or key in iam_policies.GLOBAL_KEYS:
                        continue
                    generic = (
                        "aws:RequestTag/${TagKey}" if key.startswith("aws:RequestTag/") else key
                    )
                    for act in _listed(st["Action"]):
                        supported = iam_policies.CONDITION_KEYS.get(act, frozenset())
                        assert generic in supported, f"{name} {st['Sid']}: {act} has no {key}"


def test_review_s7_s9_the_drill_role_touches_only_locks_and_rds_backups() -> None:
    drill = POLICIES["drill.json"]
    param = "arn:aws:ssm:us-east-1:123456789012:parameter/dbplatform/prod/ops/"
    for name in ("lock-restore-check", "lock-dr", "lock-dr-break-run1"):
        assert _ask(drill, "ssm:PutParameter", param + name, {}), name
    for name in ("bluegreen", "lock-bluegreen", "lock-secrets", "lock"):
        assert not _ask(drill, "ssm:PutParameter", param + name, {}), name
        assert not _ask(drill, "ssm:DeleteParameter", param + name, {}), name
    rds_point = "arn:aws:rds:us-east-1:123456789012:snapshot:awsbackup:job-1234"
    assert _ask(drill, "backup:StartRestoreJob", rds_point, {})
    other = "arn:aws:backup:us-east-1:123456789012:recovery-point:1EB3B5E7-9EB0-435A"
    assert not _ask(drill, "backup:StartRestoreJob", other, {})
    manual = "arn:aws:rds:us-east-1:123456789012:snapshot:someone-elses"
    assert not _ask(drill, "backup:StartRestoreJob", manual, {})
    # The locks the drill commands take are the ones the drill role may write.
    from dbplatform.dr.operations import COMMAND as DR
    from dbplatform.dr.restore_check import COMMAND as RESTORE_CHECK
    from dbplatform.ops.context import LOCK_SCOPES
    from infra.naming import Names

    scopes = {LOCK_SCOPES.get(c, c) for c in (DR, RESTORE_CHECK)}
    assert scopes == set(iam_policies.DRILL_LOCK_SCOPES)
    assert Names("prod").lock_parameter == "/dbplatform/prod/ops/lock"
    assert Names("prod").bluegreen_state_parameter.endswith("/ops/bluegreen")


# The rotation function's stack from the Serverless Application Repository: CloudFormation creates
# its role (a name CloudFormation generates, cut to `serverlessrepo-dbplatform-...`, see
# iam_policies.ROTATION_STACK_ROLE), the role's inline policy and the function with the deploy
# role's credentials, so the request context carries aws:CalledVia = CloudFormation.
SAR_ROLE = (
    "arn:aws:iam::123456789012:role/serverlessrepo-dbplatform-SecretsManagerRDSPostgr-AbCdEf123456"
)
VIA_CFN = {"aws:CalledVia": ["cloudformation.amazonaws.com"]}
LAMBDA_BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def test_sar_stack_role_name_begins_with_the_pattern() -> None:
    # CloudFormation's cut of `<stack>-<LogicalId>-<13>` past 64 characters: 25 + 1 + 25 + 13
    # (KensioSoftware/yulin#1113); the SAR stack of the program is `serverlessrepo-<name>`.
    from infra.naming import Names

    stack = f"serverlessrepo-{Names('a-very-long-stack-name').prefix}-master-rotation"
    logical = "SecretsManagerRDSPostgreSQLRotationSingleUserRole"
    assert len(f"{stack}-{logical}-") + 12 > 64
    name = f"{stack[:25]}-{logical[:25]}-AbCdEf123456"
    assert len(name) == 64
    assert fnmatch.fnmatchcase(
        f"arn:aws:iam::123456789012:role/{name}", _fill(iam_policies.ROTATION_STACK_ROLE)
    )


@pytest.mark.parametrize("name", ["deploy.json", "operator.json"])
def test_the_sar_rotation_stack_is_allowed_only_via_cloudformation(name: str) -> None:
    policy = POLICIES[name]
    # CloudFormation creating the stack's role, its inline policy and its managed policies.
    assert _ask(policy, "iam:CreateRole", SAR_ROLE, VIA_CFN)
    assert _ask(policy, "iam:PutRolePolicy", SAR_ROLE, VIA_CFN)
    assert _ask(policy, "iam:AttachRolePolicy", SAR_ROLE, VIA_CFN | {"iam:PolicyARN": LAMBDA_BASIC})
    assert _ask(policy, "iam:DeleteRole", SAR_ROLE, VIA_CFN)
    assert _ask(policy, "iam:PassRole", SAR_ROLE, {"iam:PassedToService": "lambda.amazonaws.com"})
    function = "arn:aws:lambda:us-east-1:123456789012:function:dbplatform-prod-rotate-master"
    assert _ask(policy, "lambda:CreateFunction", function, VIA_CFN)
    # The same calls made directly: refused (no boundary, not via CloudFormation).
    assert not _ask(policy, "iam:CreateRole", SAR_ROLE, _tags())
    assert not _ask(policy, "iam:PutRolePolicy", SAR_ROLE, {})
    assert not _ask(policy, "lambda:CreateFunction", function, {})
    # Another service via CloudFormation is not CloudFormation.
    assert not _ask(policy, "iam:CreateRole", SAR_ROLE, {"aws:CalledVia": ["athena.amazonaws.com"]})
    # Not AdministratorAccess, not even via CloudFormation; not on another role.
    assert not _ask(policy, "iam:AttachRolePolicy", SAR_ROLE, VIA_CFN | {"iam:PolicyARN": ADMIN})
    assert not _ask(policy, "iam:AttachRolePolicy", ROLE, VIA_CFN | {"iam:PolicyARN": ADMIN})
    other = "arn:aws:iam::123456789012:role/serverlessrepo-other-app-Role-AbCdEf123456"
    assert not _ask(policy, "iam:CreateRole", other, VIA_CFN)
    # The program's own roles: an inline policy only on a role inside the boundary (which caps
    # it), whatever the caller.
    assert not _ask(policy, "iam:PutRolePolicy", ROLE, VIA_CFN)
    inside = {"iam:PermissionsBoundary": BOUNDARY}
    assert _ask(policy, "iam:PutRolePolicy", ROLE, inside)
    assert not _ask(policy, "iam:PutRolePolicy", ROLE, {"iam:PermissionsBoundary": ADMIN})
    assert not _ask(policy, "iam:CreateRole", ROLE, VIA_CFN | _tags())
    # The rotation role is not handed to another service.
    assert not _ask(policy, "iam:PassRole", SAR_ROLE, {"iam:PassedToService": "ec2.amazonaws.com"})


def _for_stack(policy: dict[str, Any], stack: str) -> dict[str, Any]:
    """The policy as attached for `stack` (its ${Stack} placeholder filled)."""
    return json.loads(json.dumps(policy).replace("${Stack}", stack))


def _secret_arn(name: str, account: str = "123456789012") -> str:
    # Secrets Manager appends `-` and 6 random characters to the name in the ARN.
    return f"arn:aws:secretsmanager:us-east-1:{account}:secret:{name}-AbCdEf"


def test_the_preview_role_reads_only_its_stacks_secrets_metadata_never_a_value() -> None:
    """The preview role runs the branch's program (`cloud preview (staging)`): it may describe
    the secrets the stack declares (the names in the synth manifests), not another stack's or
    another application's, and may read no secret's value, not even its own stack's."""
    preview = POLICIES["preview.json"]
    secrets_by_stack = {
        path.stem: [
            str(r["inputs"]["name"])
            for r in json.loads(path.read_text(encoding="utf-8"))["resources"]
            if r["type"] == "aws:secretsmanager/secret:Secret"
        ]
        for path in MANIFESTS
    }
    assert set(secrets_by_stack) == {"prod", "staging"}
    for stack, names in secrets_by_stack.items():
        assert names, stack
        mine = _for_stack(preview, stack)
        other_stack = next(s for s in secrets_by_stack if s != stack)
        for name in names:
            for act in ("secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy"):
                assert _ask(mine, act, _secret_arn(name), {}), (stack, act, name)
            assert not _ask(mine, "secretsmanager:GetSecretValue", _secret_arn(name), {}), name
        for name in secrets_by_stack[other_stack]:
            assert not _ask(mine, "secretsmanager:DescribeSecret", _secret_arn(name), {}), name
        refused = [
            "otherapp/prod/db/master",
            "prod/db/master",
            f"dbplatform/{stack}-2/db/master",  # a stack whose name starts with this one's
            f"dbplatformx/{stack}/db/master",
        ]
        for name in refused:
            for act in ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"):
                assert not _ask(mine, act, _secret_arn(name), {}), (stack, act, name)
        # another account's secret of the same name
        theirs = _secret_arn(names[0], account="210987654321")
        assert not _ask(mine, "secretsmanager:DescribeSecret", theirs, {})
    # No Secrets Manager action on every resource, in any statement.
    for st in preview["Statement"]:
        if any(a.startswith("secretsmanager:") for a in _listed(st["Action"])):
            assert st["Resource"] == iam_policies.STACK_SECRETS, st["Sid"]


def _resolve(module: Any, node: ast.expr) -> object:
    """The value of a constant expression of a module: a literal, a module-level name or an
    attribute of one (`metrics.NAMESPACE`)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return getattr(module, node.id)
    if isinstance(node, ast.Attribute):
        return getattr(_resolve(module, node.value), node.attr)
    raise AssertionError(f"{module.__name__}: a Namespace that is not a constant: {ast.dump(node)}")


def published_namespaces() -> set[str]:
    """Every CloudWatch namespace the project's commands name (`Namespace=` arguments and
    `"Namespace":` request keys under dbplatform/ and scripts/), read from the code's own
    constants, less the AWS service namespaces (`AWS/...`), which the commands only read."""
    found: set[str] = set()
    for top in ("dbplatform", "scripts"):
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            values = [
                kw.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                for kw in node.keywords
                if kw.arg == "Namespace"
            ] + [
                value
                for node in ast.walk(tree)
                if isinstance(node, ast.Dict)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and key.value == "Namespace"
            ]
            if not values:
                continue
            relative = path.relative_to(ROOT).with_suffix("")
            module = importlib.import_module(".".join(relative.parts))
            found.update(str(_resolve(module, v)) for v in values)
    return {ns for ns in found if not ns.startswith("AWS/")}


def test_the_drill_role_publishes_every_namespace_the_commands_publish_and_no_other() -> None:
    """A refused PutMetricData leaves the restore-check alarm without data, which is breaching:
    the policy must allow exactly the namespaces the code publishes to."""
    from infra.components.alarms import RESTORE_CHECK_NAMESPACE

    published = published_namespaces()
    # the restore check's metric, which the prod alarm watches, is among them
    assert RESTORE_CHECK_NAMESPACE in published
    drill = POLICIES["drill.json"]
    for namespace in published:
        assert _ask(drill, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": namespace})
    assert set(iam_policies.DRILL_METRIC_NAMESPACES) == published
    for namespace in ("dbplatform", "dbplatform/Other", "OtherApp/RestoreCheck", "AWS/RDS"):
        ctx = {"cloudwatch:namespace": namespace}
        assert not _ask(drill, "cloudwatch:PutMetricData", "*", ctx), namespace
    assert not _ask(drill, "cloudwatch:PutMetricData", "*", {})


@pytest.mark.parametrize("name", ["deploy.json", "operator.json"])
def test_key_policy_changes_are_break_glass_not_ci(name: str) -> None:
    """The deploy role (and the operator permission set) create keys, with their policy in the
    CreateKey call, but never re-policy one, even a key of their own stack: a `pulumi up` that
    changes a key policy fails with AccessDenied and runs as the break-glass role
    (docs/ci.md "Break-glass", docs/vault-backups-alarms.md "Key guard"). The key policy's
    `deployRoles` exemption only satisfies KMS's lockout check at CreateKey."""
    policy = POLICIES[name]
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    owned = {"aws:ResourceTag/project": "dbplatform", "aws:ResourceTag/stack": "prod"}
    assert _ask(policy, "kms:CreateKey", "*", _tags())
    assert _ask(policy, "kms:UpdateKeyDescription", key, owned)  # other key changes: from CI
    for ctx in ({}, owned, owned | VIA_CFN):
        assert not _ask(policy, "kms:PutKeyPolicy", key, ctx), ctx
    assert "kms:PutKeyPolicy" in actions(policy, "Deny")


def test_the_deploy_role_reads_only_its_own_stacks_secrets() -> None:
    """`pulumi up` reads the values of the secret versions the stack declares; the deploy role
    reads no other stack's or application's secret (security re-audit)."""
    deploy = POLICIES["deploy.json"]
    for stack in ("prod", "staging"):
        mine = _for_stack(deploy, stack)
        own = _secret_arn(f"dbplatform/{stack}/db/master")
        for act in ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"):
            assert _ask(mine, act, own, {}), (stack, act)
        for name in ("otherapp/prod/db/master", f"dbplatform/{stack}-2/db/master"):
            assert not _ask(mine, "secretsmanager:GetSecretValue", _secret_arn(name), {}), name
    for st in deploy["Statement"]:
        reads = [a for a in _listed(st["Action"]) if a.startswith("secretsmanager:Get")]
        if reads and st["Effect"] == "Allow":
            assert st["Resource"] == iam_policies.STACK_SECRETS, st["Sid"]


def test_the_operator_role_reads_the_projects_secrets_and_no_others() -> None:
    """A DR rebuild reads the source stack's secrets and the new `<stack>-<region>` stack's."""
    operator = _for_stack(POLICIES["operator.json"], "prod")
    for name in ("dbplatform/prod/db/master", "dbplatform/prod-usw2/app/jwt-signing-key"):
        assert _ask(operator, "secretsmanager:GetSecretValue", _secret_arn(name), {}), name
        # rotate-secret lists a secret's versions (secrets/rotation.py; it was granted nowhere)
        assert _ask(operator, "secretsmanager:ListSecretVersionIds", _secret_arn(name), {}), name
    for name in ("otherapp/prod/db/master", "dbplatformx/prod/db/master"):
        assert not _ask(operator, "secretsmanager:GetSecretValue", _secret_arn(name), {}), name
