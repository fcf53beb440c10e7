"""Least-privilege IAM policies for the CI and operator roles (ci/iam/*.json), derived from what the
program declares: each resource type in the synth manifests maps to the API operations the
provider calls to read, create, update and delete it (terraform-provider-aws, the resource's
Create/Read/Update/Delete functions), and each operation to its IAM action.

Mapping source, operation -> IAM action: the AWS Service Authorization Reference lists, for the
services used here (RDS, KMS, Secrets Manager, AWS Backup, CloudWatch, EventBridge, CloudWatch
Logs, SNS, EC2, IAM, Lambda, SSM), one action per API operation with the operation's name, under
the service's IAM prefix (`_IAM_PREFIX`; CloudWatch's endpoint prefix is `monitoring`, its IAM
prefix `cloudwatch`). tests/test_iam_policies.py checks every operation exists in the botocore
service model, so a typo or a renamed operation fails the build.

Condition keys: every key a statement uses is valid for every action of that statement according
to the Service Authorization Reference ("Actions, resources, and condition keys for <service>",
https://docs.aws.amazon.com/service-authorization/latest/reference/, programmatic form
https://servicereference.us-east-1.amazonaws.com/v1/<service>/<service>.json), recorded in
`CONDITION_KEYS` below and checked by tests/test_iam_policies.py. A key an action does not support
is absent from the request context, so `StringEquals` on it denies (the create fails) and
`StringEqualsIfExists` on it allows (the condition is void): the security review (S-1) found the
second.

    python -m devtools.iam_policies          # rewrite ci/iam/*.json
    python -m devtools.iam_policies --check  # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from dbplatform.dr import metrics as restore_check_metrics
from infra.naming import GENERATED_INSTANCES, GENERATED_PARAMETER_GROUPS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "ci" / "iam"
PROJECT = "dbplatform"

# botocore service name -> IAM action prefix (Service Authorization Reference).
_IAM_PREFIX = {
    "rds": "rds",
    "kms": "kms",
    "secretsmanager": "secretsmanager",
    "backup": "backup",
    "cloudwatch": "cloudwatch",
    "events": "events",
    "logs": "logs",
    "sns": "sns",
    "ec2": "ec2",
    "iam": "iam",
    "lambda": "lambda",
    "ssm": "ssm",
    "serverlessrepo": "serverlessrepo",
    "cloudformation": "cloudformation",
    "sts": "sts",
    "route53": "route53",
}


# Pulumi type -> (botocore service, read operations, write operations).
TYPE_OPERATIONS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "aws:rds/instance:Instance": (
        "rds",
        ("DescribeDBInstances", "ListTagsForResource"),
        (
            "CreateDBInstance",
            "CreateDBInstanceReadReplica",
            "ModifyDBInstance",
            "DeleteDBInstance",
            "RebootDBInstance",
            "AddTagsToResource",
            "RemoveTagsFromResource",
        ),
    ),
    "aws:rds/parameterGroup:ParameterGroup": (
        "rds",
        ("DescribeDBParameterGroups", "DescribeDBParameters", "ListTagsForResource"),
        (
            "CreateDBParameterGroup",
            "ModifyDBParameterGroup",
            "ResetDBParameterGroup",
            "DeleteDBParameterGroup",
            "AddTagsToResource",
            "RemoveTagsFromResource",
        ),
    ),
    "aws:rds/subnetGroup:SubnetGroup": (
        "rds",
        ("DescribeDBSubnetGroups", "ListTagsForResource"),
        (
            "CreateDBSubnetGroup",
            "ModifyDBSubnetGroup",
            "DeleteDBSubnetGroup",
            "AddTagsToResource",
            "RemoveTagsFromResource",
        ),
    ),
    "aws:rds/eventSubscription:EventSubscription": (
        "rds",
        ("DescribeEventSubscriptions", "ListTagsForResource"),
        (
            "CreateEventSubscription",
            "ModifyEventSubscription",
            "DeleteEventSubscription",
            "AddSourceIdentifierToSubscription",
            "RemoveSourceIdentifierFromSubscription",
            "AddTagsToResource",
            "RemoveTagsFromResource",
        ),
    ),
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication": (
        "rds",
        ("DescribeDBInstanceAutomatedBackups",),
        ("StartDBInstanceAutomatedBackupsReplication", "StopDBInstanceAutomatedBackupsReplication"),
    ),
    "aws:kms/key:Key": (
        "kms",
        ("DescribeKey", "GetKeyPolicy", "GetKeyRotationStatus", "ListResourceTags"),
        (
            # PutKeyPolicy is withheld (security review S-1): CreateKey sets the policy; changing a
            # key policy later is the break-glass path (docs/ci.md), not CI's.
            "CreateKey",
            "EnableKeyRotation",
            "UpdateKeyDescription",
            "ScheduleKeyDeletion",
            "TagResource",
            "UntagResource",
        ),
    ),
    "aws:kms/alias:Alias": (
        "kms",
        ("ListAliases",),
        ("CreateAlias", "UpdateAlias", "DeleteAlias"),
    ),
    "aws:secretsmanager/secret:Secret": (
        "secretsmanager",
        ("DescribeSecret", "GetResourcePolicy"),
        (
            "CreateSecret",
            "UpdateSecret",
            "DeleteSecret",
            "PutResourcePolicy",
            "DeleteResourcePolicy",
            "TagResource",
            "UntagResource",
        ),
    ),
    "aws:secretsmanager/secretVersion:SecretVersion": (
        "secretsmanager",
        ("DescribeSecret", "GetSecretValue"),
        ("PutSecretValue", "UpdateSecretVersionStage"),
    ),
    "aws:secretsmanager/secretRotation:SecretRotation": (
        "secretsmanager",
        ("DescribeSecret",),
        ("RotateSecret", "CancelRotateSecret"),
    ),
    "aws:backup/vault:Vault": (
        "backup",
        ("DescribeBackupVault", "ListTags"),
        ("CreateBackupVault", "DeleteBackupVault", "TagResource", "UntagResource"),
    ),
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration": (
        "backup",
        ("DescribeBackupVault",),
        ("PutBackupVaultLockConfiguration",),
    ),
    "aws:backup/vaultPolicy:VaultPolicy": (
        "backup",
        ("GetBackupVaultAccessPolicy",),
        ("PutBackupVaultAccessPolicy", "DeleteBackupVaultAccessPolicy"),
    ),
    "aws:backup/plan:Plan": (
        "backup",
        ("GetBackupPlan", "ListTags"),
        (
            "CreateBackupPlan",
            "UpdateBackupPlan",
            "DeleteBackupPlan",
            "TagResource",
            "UntagResource",
        ),
    ),
    "aws:backup/selection:Selection": (
        "backup",
        ("GetBackupSelection",),
        ("CreateBackupSelection", "DeleteBackupSelection"),
    ),
    "aws:backup/restoreTestingPlan:RestoreTestingPlan": (
        "backup",
        ("GetRestoreTestingPlan", "ListTags"),
        (
            "CreateRestoreTestingPlan",
            "UpdateRestoreTestingPlan",
            "DeleteRestoreTestingPlan",
            "TagResource",
            "UntagResource",
        ),
    ),
    "aws:backup/restoreTestingSelection:RestoreTestingSelection": (
        "backup",
        ("GetRestoreTestingSelection",),
        (
            "CreateRestoreTestingSelection",
            "UpdateRestoreTestingSelection",
            "DeleteRestoreTestingSelection",
        ),
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        "cloudwatch",
        ("DescribeAlarms", "ListTagsForResource"),
        ("PutMetricAlarm", "DeleteAlarms", "TagResource", "UntagResource"),
    ),
    "aws:cloudwatch/dashboard:Dashboard": (
        "cloudwatch",
        ("GetDashboard",),
        ("PutDashboard", "DeleteDashboards"),
    ),
    "aws:cloudwatch/eventRule:EventRule": (
        "events",
        ("DescribeRule", "ListTagsForResource"),
        ("PutRule", "DeleteRule", "EnableRule", "DisableRule", "TagResource", "UntagResource"),
    ),
    "aws:cloudwatch/eventTarget:EventTarget": (
        "events",
        ("ListTargetsByRule",),
        ("PutTargets", "RemoveTargets"),
    ),
    "aws:cloudwatch/logGroup:LogGroup": (
        "logs",
        ("DescribeLogGroups", "ListTagsForResource"),
        (
            "CreateLogGroup",
            "DeleteLogGroup",
            "PutRetentionPolicy",
            "DeleteRetentionPolicy",
            "AssociateKmsKey",
            "DisassociateKmsKey",
            "TagResource",
            "UntagResource",
        ),
    ),
    "aws:sns/topic:Topic": (
        "sns",
        ("GetTopicAttributes", "ListTagsForResource"),
        ("CreateTopic", "DeleteTopic", "SetTopicAttributes", "TagResource", "UntagResource"),
    ),
    "aws:sns/topicPolicy:TopicPolicy": (
        "sns",
        ("GetTopicAttributes",),
        ("SetTopicAttributes",),
    ),
    "aws:sns/topicSubscription:TopicSubscription": (
        "sns",
        ("GetSubscriptionAttributes",),
        ("Subscribe", "Unsubscribe", "SetSubscriptionAttributes"),
    ),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "ec2",
        ("DescribeSecurityGroupRules",),
        (
            "AuthorizeSecurityGroupIngress",
            "RevokeSecurityGroupIngress",
            "ModifySecurityGroupRules",
            "CreateTags",
            "DeleteTags",
        ),
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        "ec2",
        ("DescribeSecurityGroupRules",),
        (
            "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupEgress",
            "ModifySecurityGroupRules",
            "CreateTags",
            "DeleteTags",
        ),
    ),
    "aws:ec2/securityGroup:SecurityGroup": (
        "ec2",
        ("DescribeSecurityGroups",),
        (
            "CreateSecurityGroup",
            "DeleteSecurityGroup",
            "CreateTags",
            "DeleteTags",
            "RevokeSecurityGroupEgress",
        ),
    ),
    "aws:ec2/vpc:Vpc": (
        "ec2",
        ("DescribeVpcs", "DescribeVpcAttribute"),
        ("CreateVpc", "DeleteVpc", "ModifyVpcAttribute", "CreateTags", "DeleteTags"),
    ),
    "aws:ec2/subnet:Subnet": (
        "ec2",
        ("DescribeSubnets",),
        ("CreateSubnet", "DeleteSubnet", "ModifySubnetAttribute", "CreateTags", "DeleteTags"),
    ),
    "aws:ec2/routeTable:RouteTable": (
        "ec2",
        ("DescribeRouteTables",),
        (
            "CreateRouteTable",
            "DeleteRouteTable",
            "CreateRoute",
            "DeleteRoute",
            "CreateTags",
            "DeleteTags",
        ),
    ),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (
        "ec2",
        ("DescribeRouteTables",),
        ("AssociateRouteTable", "DisassociateRouteTable", "ReplaceRouteTableAssociation"),
    ),
    "aws:ec2/vpcEndpoint:VpcEndpoint": (
        "ec2",
        ("DescribeVpcEndpoints", "DescribePrefixLists"),
        (
            "CreateVpcEndpoint",
            "ModifyVpcEndpoint",
            "DeleteVpcEndpoints",
            "CreateTags",
            "DeleteTags",
        ),
    ),
    # the created VPC's connection to the application, its flow logs and default group
    "aws:ec2/route:Route": (
        "ec2",
        ("DescribeRouteTables",),
        ("CreateRoute", "ReplaceRoute", "DeleteRoute"),
    ),
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": (
        "ec2",
        ("DescribeVpcPeeringConnections",),
        (
            "CreateVpcPeeringConnection",
            "AcceptVpcPeeringConnection",
            "ModifyVpcPeeringConnectionOptions",
            "DeleteVpcPeeringConnection",
            "CreateTags",
            "DeleteTags",
        ),
    ),
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": (
        "ec2",
        ("DescribeTransitGatewayVpcAttachments",),
        (
            "CreateTransitGatewayVpcAttachment",
            "ModifyTransitGatewayVpcAttachment",
            "DeleteTransitGatewayVpcAttachment",
            "CreateTags",
            "DeleteTags",
        ),
    ),
    "aws:ec2/flowLog:FlowLog": (
        "ec2",
        ("DescribeFlowLogs",),
        ("CreateFlowLogs", "DeleteFlowLogs", "CreateTags", "DeleteTags"),
    ),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": (
        "ec2",
        ("DescribeSecurityGroups", "DescribeSecurityGroupRules"),
        (
            "RevokeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "CreateTags",
            "DeleteTags",
        ),
    ),
    "aws:route53/healthCheck:HealthCheck": (
        "route53",
        ("GetHealthCheck", "ListTagsForResource"),
        ("CreateHealthCheck", "UpdateHealthCheck", "DeleteHealthCheck", "ChangeTagsForResource"),
    ),
    "aws:iam/role:Role": (
        "iam",
        ("GetRole", "ListAttachedRolePolicies", "ListRolePolicies"),
        (
            # UpdateAssumeRolePolicy is withheld (security review S-1): a new trust policy would let
            # any principal assume a role; it takes no condition key that limits the document.
            "CreateRole",
            "DeleteRole",
            "UpdateRole",
            "TagRole",
            "UntagRole",
        ),
    ),
    "aws:iam/rolePolicy:RolePolicy": (
        "iam",
        ("GetRolePolicy", "ListRolePolicies"),
        ("PutRolePolicy", "DeleteRolePolicy"),
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (
        "iam",
        ("ListAttachedRolePolicies",),
        ("AttachRolePolicy", "DetachRolePolicy"),
    ),
    "aws:serverlessrepository/cloudFormationStack:CloudFormationStack": (
        "cloudformation",
        ("DescribeStacks", "GetTemplate"),
        ("CreateChangeSet", "ExecuteChangeSet", "DescribeChangeSet", "DeleteStack"),
    ),
}

# What every Pulumi run of this program reads besides its resources: the provider's account and
# region look-ups (aws.get_caller_identity, get_region, get_availability_zones, the default VPC).
_PROGRAM_READS = {
    "sts": ("GetCallerIdentity",),
    "ec2": ("DescribeAvailabilityZones", "DescribeRegions", "DescribeVpcs", "DescribeSubnets"),
    "serverlessrepo": ("GetApplication",),
}
# Writes of a resource type in a second service: the Serverless Application Repository stack
# asks serverlessrepo for the template it then deploys with CloudFormation.
_TYPE_EXTRA_WRITES: dict[str, tuple[str, tuple[str, ...]]] = {
    "aws:serverlessrepository/cloudFormationStack:CloudFormationStack": (
        "serverlessrepo",
        ("CreateCloudFormationTemplate", "GetCloudFormationTemplate"),
    ),
}

# Identifier prefixes of what the drills create (infra/naming.py Names.restore_check_instance:
# `<project>-<stack>-rc-<run>`; infra/naming.py drill_stack: `<stack>-drill-<run>`,
# so its instances are `<project>-<stack>-drill-<run>-...`) and the purpose tag they carry
# (dbplatform/dr/restore.py TAG_PURPOSE).
# Exactly the generated shapes (`?` is one character in IAM's wildcards), so no name the
# program declares matches by accident: a restore check's `<project>-<stack>-rc-<run id>`
# (run id `20261202t142100z-3f10f0`) and a drill's primary `<project>-<head>-drill-<6 hex>-pg`.
DRILL_PREFIXES = GENERATED_INSTANCES
DRILL_PURPOSES = ("restore-check", "dr-drill", "dr-rebuild")
PURPOSE_TAG = "dbplatform:purpose"
# The SSM parameters a drill writes: the stack's operation locks of the scopes the drills take
# (dbplatform/ops/context.py LOCK_SCOPES: `restore_check` -> `restore-check`, `dr` -> `dr`), named
# `<Names.lock_parameter>-<scope>` (`/<project>/<stack>/ops/lock-<scope>`), and the claim a
# `--break-lock` creates beside one (`<lock>-break-<run id>`, dbplatform/ops/lock.py). In an IAM
# ARN `*` matches any characters, but each name must END as listed: the blue/green record
# (`.../ops/bluegreen`) and the other scopes' locks are out of reach (security review S-7).
DRILL_LOCK_SCOPES = ("restore-check", "dr")
DRILL_LOCK_PARAMETERS = tuple(
    f"/{PROJECT}/*/ops/lock-{scope}{suffix}"
    for scope in DRILL_LOCK_SCOPES
    for suffix in ("", "-break-*")
)
# The CloudWatch namespaces the drill commands publish to (PutMetricData): the restore check's
# `dbplatform/RestoreCheck` (dbplatform/dr/metrics.py NAMESPACE, which the prod alarm watches;
# missing data is breaching, so a refused publish pages). The DR drill publishes none.
# tests/test_iam_policies.py finds every namespace the code publishes to and checks it is here.
DRILL_METRIC_NAMESPACES = (restore_check_metrics.NAMESPACE,)

_ACCOUNT = "${AccountId}"
_PARTITION = "${Partition}"
# Placeholders replaced when the policy is attached (docs/ci.md): the account, the stack, the
# state bucket and the secrets-provider key.
STATE_BUCKET = "${StateBucket}"
SECRETS_KEY = f"arn:{_PARTITION}:kms:*:{_ACCOUNT}:key/${{SecretsProviderKeyId}}"


def action(service: str, operation: str) -> str:
    """IAM action of a botocore operation: (`rds`, `CreateDBInstance`) -> `rds:CreateDBInstance`."""
    return f"{_IAM_PREFIX[service]}:{operation}"


def operations(types: Iterable[str], *, write: bool) -> dict[str, set[str]]:
    """Service -> operations the program needs for these resource types (reads, plus writes)."""
    out: dict[str, set[str]] = {}
    for t in types:
        service, reads, writes = TYPE_OPERATIONS[t]
        out.setdefault(service, set()).update(reads + (writes if write else ()))
        if write and t in _TYPE_EXTRA_WRITES:
            extra_service, extra = _TYPE_EXTRA_WRITES[t]
            out.setdefault(extra_service, set()).update(extra)
    for service, ops in _PROGRAM_READS.items():
        out.setdefault(service, set()).update(ops)
    return out


def _actions(ops: dict[str, set[str]]) -> list[str]:
    return sorted(action(s, o) for s, names in ops.items() for o in names)


def declared_types(manifests: Iterable[Path]) -> set[str]:
    """Every AWS resource type the synth manifests declare (providers and `random:` excluded:
    they call no AWS API)."""
    types: set[str] = set()
    for path in manifests:
        doc = json.loads(path.read_text(encoding="utf-8"))
        for r in doc["resources"]:
            if r.get("custom") and str(r["type"]).startswith("aws:"):
                types.add(str(r["type"]))
    return types


def _state_statements(write: bool) -> list[dict[str, object]]:
    objects = ["s3:GetObject"] + (["s3:PutObject", "s3:DeleteObject"] if write else [])
    kms = ["kms:Decrypt"] + (["kms:Encrypt", "kms:GenerateDataKey"] if write else [])
    return [
        {
            "Sid": "StateBucketList",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": f"arn:{_PARTITION}:s3:::{STATE_BUCKET}",
        },
        {
            "Sid": "StateObjects",
            "Effect": "Allow",
            "Action": objects,
            "Resource": f"arn:{_PARTITION}:s3:::{STATE_BUCKET}/*",
        },
        {"Sid": "SecretsProviderKey", "Effect": "Allow", "Action": kms, "Resource": SECRETS_KEY},
    ]


def _tagged(stack_tag: bool = True) -> dict[str, object]:
    cond: dict[str, str] = {"aws:ResourceTag/project": PROJECT}
    if stack_tag:
        cond["aws:ResourceTag/stack"] = "${Stack}"
    return {"StringEquals": cond}


# The stack's secrets (infra/naming.py Names.master_secret, app_secret: `<project>/<stack>/...`).
# A secret's ARN ends in `-` and 6 random characters (Secrets Manager User Guide, "Secret ARN"),
# hence the trailing `*`; a stack name has no `/` (infra/naming.py STACK_NAME), so
# `dbplatform/staging/*` is not `dbplatform/staging-2/...`.
STACK_SECRETS = f"arn:{_PARTITION}:secretsmanager:*:{_ACCOUNT}:secret:{PROJECT}/${{Stack}}/*"
PROJECT_SECRETS = f"arn:{_PARTITION}:secretsmanager:*:{_ACCOUNT}:secret:{PROJECT}/*"
# Reads the preview role does without (security review, preview role): `pulumi preview` as the
# workflows run it (no --refresh) calls no resource's Read, so no GetSecretValue; a refresh would
# (terraform-provider-aws secret_version.go reads the value), and a refresh is an operator's, not
# a pull request's. The preview role runs the branch's program: any GetSecretValue would hand the
# stack's master password to unreviewed code.
PREVIEW_WITHHELD = frozenset({"secretsmanager:GetSecretValue"})


def _read_statements(reads: Sequence[str], secrets_sid: str) -> list[dict[str, object]]:
    """`reads` on every resource but Secrets Manager's, which only on the stack's own secrets
    (security re-audit: a role that reads every secret in the account reads other applications'
    passwords); the second statement is left out when there is no Secrets Manager read."""
    secrets = [a for a in reads if a.startswith("secretsmanager:")]
    statements: list[dict[str, object]] = [
        {
            "Sid": "ReadWhatTheProgramDeclares",
            "Effect": "Allow",
            "Action": [a for a in reads if a not in secrets],
            "Resource": "*",
        }
    ]
    if secrets:
        statements.append(
            {"Sid": secrets_sid, "Effect": "Allow", "Action": secrets, "Resource": STACK_SECRETS}
        )
    return statements


def preview_policy(types: set[str]) -> dict[str, object]:
    """Read-only: what `pulumi preview` reads, the state, and decrypting it; Secrets Manager only
    the stack's secrets' metadata, never a value."""
    reads = [a for a in _actions(operations(types, write=False)) if a not in PREVIEW_WITHHELD]
    statements = _read_statements(reads, "ReadOnlyThisStacksSecretsMetadata")
    return {
        "Version": "2012-10-17",
        "Statement": [*statements, *_state_statements(write=False)],
    }


# KMS key administration stays with people (security review H-1): CI never deletes or disables
# a key, and never re-enables one an operator disabled. Nor does it rewrite a key policy or roles'
# trust and boundaries (S-1): those are the break-glass path (docs/ci.md, "Break-glass").
_KMS_ADMIN_DENIED = ["kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CancelKeyDeletion"]
_ESCALATION_DENIED = [
    "kms:PutKeyPolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
]

# The boundary every role the program creates must carry (ci/iam/boundary.json, created once per
# account by an administrator under this name).
BOUNDARY_NAME = f"{PROJECT}-service-role-boundary"
BOUNDARY_ARN = f"arn:{_PARTITION}:iam::{_ACCOUNT}:policy/{BOUNDARY_NAME}"

# The master-secret rotation function comes from the Serverless Application Repository
# (infra/components/vault.py): CloudFormation creates its execution role, the role's inline
# policy and the Lambda function with the deploy role's own credentials (the SAR stack has no
# CloudFormation service role), and the AWS template gives no parameter for a permissions boundary
# (its parameters: endpoint, functionName, vpcSubnetIds, vpcSecurityGroupIds, kmsKeyArn,
# excludeCharacters; the CDK SecretRotation and the hosted-rotation templates expose none either).
# So those calls are allowed only when CloudFormation makes them (aws:CalledVia, IAM User Guide
# "AWS global condition context keys"; CloudFormation is one of the services that sets it, AWS
# Security Blog "How to define least-privileged permissions for actions called by AWS services")
# and only on what that stack creates:
# - the role: CloudFormation names it `<stack>-<LogicalId>-<13 random>` and, past IAM's 64
#   characters, keeps 25 characters of the stack name and 25 of the logical id (observed rule,
#   AWS documents none: KensioSoftware/yulin#1113). The SAR stack is `serverlessrepo-<name>`
#   (aws_serverlessapplicationrepository_cloudformation_stack), the function's role logical id
#   `SecretsManagerRDSPostgreSQLRotationSingleUserRole` is 49 characters, so the name is always
#   cut and begins `serverlessrepo-dbplatform` (exactly 25): the stack name is not in it, and the
#   pattern cannot be narrowed to ${Stack}.
# - the function: its name is the `functionName` parameter (infra/naming.py rotation_function).
CALLED_VIA_CLOUDFORMATION = {
    "ForAnyValue:StringEquals": {"aws:CalledVia": ["cloudformation.amazonaws.com"]}
}
ROTATION_STACK_ROLE = f"arn:{_PARTITION}:iam::{_ACCOUNT}:role/serverlessrepo-{PROJECT}-*"
ROTATION_FUNCTION = f"arn:{_PARTITION}:lambda:*:{_ACCOUNT}:function:{PROJECT}-${{Stack}}-*"
# The SAM function's role: AWSLambdaBasicExecutionRole always, AWSLambdaVPCAccessExecutionRole
# for a function in a VPC (SAM "AWS::Serverless::Function" generated resources).
ROTATION_MANAGED_POLICIES = tuple(
    f"arn:{_PARTITION}:iam::aws:policy/service-role/{name}"
    for name in ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole")
)
ROTATION_ROLE_ACTIONS = (
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
)
ROTATION_FUNCTION_ACTIONS = (
    "lambda:AddPermission",
    "lambda:CreateFunction",
    "lambda:DeleteFunction",
    "lambda:GetFunction",
    "lambda:RemovePermission",
    "lambda:TagResource",
    "lambda:UntagResource",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
)
VIA_CLOUDFORMATION = frozenset(
    ROTATION_ROLE_ACTIONS
    + ROTATION_FUNCTION_ACTIONS
    + ("iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:PassRole")
)

# Creates whose action takes aws:RequestTag/${TagKey} and aws:TagKeys (Service Authorization
# Reference, each service's Actions table). The others are limited by name or by their parent.
TAG_ON_CREATE = frozenset(
    {
        "backup:CreateBackupPlan",
        "backup:CreateBackupVault",
        "kms:CreateKey",
        "logs:CreateLogGroup",
        "rds:CreateDBInstance",
        "rds:CreateDBInstanceReadReplica",
        "rds:CreateDBParameterGroup",
        "rds:CreateDBSubnetGroup",
        "rds:CreateEventSubscription",
        "secretsmanager:CreateSecret",
        "sns:CreateTopic",
    }
)
# EC2 creates: the tag condition applies to the created resource type; the parent they are created
# in (a VPC, possibly the account's default one) is a second resource of the same request
# (Amazon EC2 User Guide, "Grant permission to tag Amazon EC2 resources during creation").
EC2_CREATES = {
    "ec2:CreateVpc": ("vpc",),
    "ec2:CreateSubnet": ("subnet",),
    "ec2:CreateSecurityGroup": ("security-group",),
    "ec2:CreateRouteTable": ("route-table",),
    "ec2:CreateVpcEndpoint": ("vpc-endpoint",),
}
EC2_PARENTS = {
    "ec2:CreateSubnet": ("vpc",),
    "ec2:CreateSecurityGroup": ("vpc",),
    "ec2:CreateRouteTable": ("vpc",),
    "ec2:CreateVpcEndpoint": ("vpc", "subnet", "security-group", "route-table"),
}
# Creates on an existing resource of this stack (a route in its route table, an alias of its key):
# limited like every other change, by the resource's tags or name.
CREATES_ON_OWNED = frozenset({"ec2:CreateRoute", "kms:CreateAlias", "ec2:CreateTags"})

# Global condition keys the policies use (IAM User Guide, "AWS global condition context keys"):
# valid with every action.
GLOBAL_KEYS = frozenset({"aws:CalledVia"})

# Condition keys per action, from the Service Authorization Reference (see the module docstring);
# tests/test_iam_policies.py checks every key a statement uses against this table.
_TAG_KEYS = frozenset({"aws:RequestTag/${TagKey}", "aws:TagKeys"})
CONDITION_KEYS: dict[str, frozenset[str]] = {
    **dict.fromkeys(TAG_ON_CREATE, _TAG_KEYS),
    **dict.fromkeys(EC2_CREATES, _TAG_KEYS),
    "kms:CreateKey": _TAG_KEYS | {"kms:BypassPolicyLockoutSafetyCheck"},
    "iam:CreateRole": _TAG_KEYS | {"iam:PermissionsBoundary"},
    "iam:AttachRolePolicy": frozenset({"iam:PolicyARN", "iam:PermissionsBoundary"}),
    "iam:DetachRolePolicy": frozenset({"iam:PolicyARN", "iam:PermissionsBoundary"}),
    "iam:PutRolePolicy": frozenset({"iam:PermissionsBoundary"}),
    "iam:DeleteRolePolicy": frozenset({"iam:PermissionsBoundary"}),
    "iam:PassRole": frozenset({"iam:PassedToService", "iam:AssociatedResourceArn"}),
    "ec2:CreateTags": _TAG_KEYS | {"ec2:CreateAction", "aws:ResourceTag/${TagKey}"},
    "cloudwatch:PutMetricData": frozenset({"cloudwatch:namespace"}),
    "rds:RestoreDBInstanceFromDBSnapshot": _TAG_KEYS,
    "rds:RestoreDBInstanceToPointInTime": _TAG_KEYS,
    # RDS User Guide, "Grant permission to tag Amazon RDS resources during creation": "In the
    # IAM policy definition for the rds:AddTagsToResource action, you can use the aws:RequestTag
    # condition key"
    "rds:AddTagsToResource": _TAG_KEYS,
}


def managed_policies(manifests: Iterable[Path]) -> list[str]:
    """The AWS managed policies the program attaches to its roles (RolePolicyAttachment inputs),
    in every partition: the only ones the deploy role may attach."""
    arns: set[str] = set()
    for path in manifests:
        doc = json.loads(path.read_text(encoding="utf-8"))
        for r in doc["resources"]:
            if r.get("type") == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
                arn = str(r["inputs"]["policyArn"])
                arns.add(arn.replace("arn:aws:", f"arn:{_PARTITION}:", 1))
    return sorted(arns)


def tag_keys(manifests: Iterable[Path]) -> list[str]:
    """Every tag key the program sets (the `tags` inputs of the manifests)."""
    keys: set[str] = set()
    for path in manifests:
        doc = json.loads(path.read_text(encoding="utf-8"))
        for r in doc["resources"]:
            tags = r.get("inputs", {}).get("tags")
            if isinstance(tags, dict):
                keys.update(str(k) for k in tags)
    return sorted(keys)


def _request_tags(keys: Sequence[str]) -> dict[str, object]:
    # StringEquals: the tags must be present with these values (a create without them is denied);
    # ForAllValues on aws:TagKeys: no tag key beyond the program's (no ABAC tag smuggled in).
    return {
        "StringEquals": {"aws:RequestTag/project": PROJECT, "aws:RequestTag/stack": "${Stack}"},
        "ForAllValues:StringEquals": {"aws:TagKeys": list(keys)},
    }


def deploy_policy(
    types: set[str], keys: Sequence[str] = (), attachable: Sequence[str] = ()
) -> dict[str, object]:
    """Reads anywhere; writes only on resources tagged project/stack or named with the prefix;
    creates only with the stack's tags; roles only inside the boundary (security review S-1)."""
    reads = operations(types, write=False)
    everything = operations(types, write=True)
    writes = {s: everything[s] - reads.get(s, set()) for s in everything}
    write_actions = _actions(writes)
    creates = {a for a in write_actions if a.split(":")[1].startswith("Create")}
    tagged_creates = sorted(creates & TAG_ON_CREATE)
    ec2_creates = sorted(creates & EC2_CREATES.keys())
    special = {"iam:CreateRole", "iam:AttachRolePolicy", "iam:DetachRolePolicy"}
    untagged_creates = sorted(
        creates - TAG_ON_CREATE - EC2_CREATES.keys() - CREATES_ON_OWNED - special
    )
    others = sorted(
        a for a in write_actions if (a not in creates or a in CREATES_ON_OWNED) and a not in special
    )
    prefix = f"{PROJECT}-${{Stack}}-*"
    ec2_arn = f"arn:{_PARTITION}:ec2:*:{_ACCOUNT}:"
    role_arn = f"arn:{_PARTITION}:iam::{_ACCOUNT}:role/{prefix}"
    # `pulumi up` reads the values of the secret versions it declares, never another's
    statements = [
        *_read_statements(_actions(reads), "ReadThisStacksSecrets"),
        {
            # Creates must carry the stack's tags (the program's base_tags), so every later
            # change is limited to what this stack created.
            "Sid": "CreateTaggedForThisStack",
            "Effect": "Allow",
            "Action": tagged_creates,
            "Resource": "*",
            "Condition": _request_tags(keys),
        },
    ]
    if ec2_creates:
        statements += [
            {
                "Sid": "CreateTaggedNetworkForThisStack",
                "Effect": "Allow",
                "Action": ec2_creates,
                "Resource": sorted(
                    {ec2_arn + f"{t}/*" for a in ec2_creates for t in EC2_CREATES[a]}
                ),
                "Condition": _request_tags(keys),
            },
            {
                "Sid": "CreateNetworkInItsParent",
                "Effect": "Allow",
                "Action": sorted(a for a in ec2_creates if a in EC2_PARENTS),
                "Resource": sorted(
                    {ec2_arn + f"{t}/*" for a in ec2_creates for t in EC2_PARENTS.get(a, ())}
                ),
            },
            {
                # Tags only as part of one of those creates (ec2:CreateAction): an existing VPC or
                # security group cannot be tagged as this stack's and then changed or deleted.
                "Sid": "TagOnlyOnCreate",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": "*",
                "Condition": {"StringEquals": {"ec2:CreateAction": [a[4:] for a in ec2_creates]}},
            },
        ]
    if "iam:CreateRole" in creates:
        statements.append(
            {
                # A role only inside the boundary (ci/iam/boundary.json), so no role this stack
                # creates can do more than RDS monitoring and AWS Backup need.
                "Sid": "CreateRolesInsideTheBoundary",
                "Effect": "Allow",
                "Action": ["iam:CreateRole"],
                "Resource": role_arn,
                "Condition": {
                    **_request_tags(keys),
                    "StringEquals": {
                        **_request_tags(keys)["StringEquals"],  # type: ignore[dict-item]
                        "iam:PermissionsBoundary": BOUNDARY_ARN,
                    },
                },
            }
        )
    if "iam:PutRolePolicy" in write_actions:
        statements.append(
            {
                # The flow-log role's inline policy (a RolePolicy the program declares): only on
                # a role inside the boundary, which caps whatever the policy says.
                "Sid": "InlinePoliciesOnlyInsideTheBoundary",
                "Effect": "Allow",
                "Action": ["iam:PutRolePolicy", "iam:DeleteRolePolicy"],
                "Resource": role_arn,
                "Condition": {"StringEquals": {"iam:PermissionsBoundary": BOUNDARY_ARN}},
            }
        )
    if "iam:AttachRolePolicy" in write_actions:
        statements.append(
            {
                # Only the AWS managed policies the program attaches (RDS enhanced monitoring,
                # AWS Backup): never AdministratorAccess.
                "Sid": "AttachOnlyTheProgramsManagedPolicies",
                "Effect": "Allow",
                "Action": ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
                "Resource": role_arn,
                "Condition": {"ArnEquals": {"iam:PolicyARN": list(attachable)}},
            }
        )
    if untagged_creates:
        statements.append(
            {
                # Creates that take no tag condition (Service Authorization Reference): a backup
                # selection, a restore testing plan and selection, a health check, a SAR template.
                "Sid": "CreateWithoutTagConditions",
                "Effect": "Allow",
                "Action": untagged_creates,
                "Resource": "*",
            }
        )
    statements += [
        {
            "Sid": "ChangeOnlyThisStacksResources",
            "Effect": "Allow",
            "Action": others,
            "Resource": "*",
            "Condition": _tagged(),
        },
        {
            # Resources whose actions take no resource tag condition are named with the
            # stack's prefix (infra/naming.py Names.prefix).
            "Sid": "ChangeByNamePrefix",
            "Effect": "Allow",
            "Action": others,
            "Resource": [
                f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:*:{prefix}",
                f"arn:{_PARTITION}:cloudwatch:*:{_ACCOUNT}:alarm:{prefix}",
                f"arn:{_PARTITION}:cloudwatch::{_ACCOUNT}:dashboard/{prefix}",
                f"arn:{_PARTITION}:events:*:{_ACCOUNT}:rule/{prefix}",
                f"arn:{_PARTITION}:logs:*:{_ACCOUNT}:log-group:/aws/rds/instance/{prefix}",
                f"arn:{_PARTITION}:sns:*:{_ACCOUNT}:{prefix}",
                role_arn,
                f"arn:{_PARTITION}:route53:::healthcheck/*",
                f"arn:{_PARTITION}:secretsmanager:*:{_ACCOUNT}:secret:{PROJECT}/${{Stack}}/*",
                f"arn:{_PARTITION}:backup:*:{_ACCOUNT}:backup-vault:{prefix}",
                f"arn:{_PARTITION}:kms:*:{_ACCOUNT}:alias/{prefix}",
                f"arn:{_PARTITION}:cloudformation:*:{_ACCOUNT}:stack/serverlessrepo-{prefix}/*",
            ],
        },
        {
            # Only the program's own roles are handed to RDS monitoring and AWS Backup.
            "Sid": "PassOnlyTheStacksServiceRoles",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": role_arn,
            "Condition": {
                "StringEquals": {
                    "iam:PassedToService": [
                        "monitoring.rds.amazonaws.com",
                        "backup.amazonaws.com",
                    ]
                }
            },
        },
        *_rotation_stack_statements(),
        {
            # A key whose policy locks out the account's administrators is never created.
            "Sid": "NoPolicyLockoutBypass",
            "Effect": "Deny",
            "Action": ["kms:CreateKey"],
            "Resource": "*",
            "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}},
        },
        {
            "Sid": "NoKeyAdministration",
            "Effect": "Deny",
            "Action": _KMS_ADMIN_DENIED,
            "Resource": "*",
        },
        {
            "Sid": "NoPrivilegeEscalation",
            "Effect": "Deny",
            "Action": _ESCALATION_DENIED,
            "Resource": "*",
        },
        {
            # No inline role policy on a role without the boundary, but the one CloudFormation
            # writes on the rotation stack's role (allowed above only via CloudFormation). Under
            # the boundary an inline policy cannot grant more than the boundary does (IAM User
            # Guide, "Permissions boundaries for IAM entities": the delegation example conditions
            # PutRolePolicy on iam:PermissionsBoundary).
            "Sid": "NoInlineRolePolicies",
            "Effect": "Deny",
            "Action": ["iam:PutRolePolicy"],
            "NotResource": ROTATION_STACK_ROLE,
            "Condition": {"StringNotEquals": {"iam:PermissionsBoundary": BOUNDARY_ARN}},
        },
        *_state_statements(write=True),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def _rotation_stack_statements() -> list[dict[str, object]]:
    """What CloudFormation does with the deploy role's credentials for the SAR rotation stack
    (see ROTATION_STACK_ROLE): never callable directly."""
    return [
        {
            "Sid": "RotationStackRoleViaCloudFormation",
            "Effect": "Allow",
            "Action": list(ROTATION_ROLE_ACTIONS),
            "Resource": ROTATION_STACK_ROLE,
            "Condition": CALLED_VIA_CLOUDFORMATION,
        },
        {
            "Sid": "RotationStackManagedPoliciesViaCloudFormation",
            "Effect": "Allow",
            "Action": ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
            "Resource": ROTATION_STACK_ROLE,
            "Condition": {
                **CALLED_VIA_CLOUDFORMATION,
                "ArnEquals": {"iam:PolicyARN": list(ROTATION_MANAGED_POLICIES)},
            },
        },
        {
            "Sid": "RotationFunctionViaCloudFormation",
            "Effect": "Allow",
            "Action": list(ROTATION_FUNCTION_ACTIONS),
            "Resource": ROTATION_FUNCTION,
            "Condition": CALLED_VIA_CLOUDFORMATION,
        },
        {
            # lambda:CreateFunction checks iam:PassRole for its execution role; only to Lambda.
            "Sid": "PassTheRotationRoleToLambda",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": ROTATION_STACK_ROLE,
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
    ]


def boundary_policy() -> dict[str, object]:
    """The permissions boundary of every role the program creates: what the AWS managed policies
    it attaches need for RDS (enhanced monitoring writes the `RDSOSMetrics` log group) and AWS
    Backup of RDS (backup, restore, the KMS grants they use), and no IAM beyond passing the stack's
    roles. A role can never do more than this, whatever policy is attached to it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EnhancedMonitoringLogs",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:GetLogEvents",
                    "logs:PutLogEvents",
                    "logs:PutRetentionPolicy",
                ],
                "Resource": [
                    f"arn:{_PARTITION}:logs:*:{_ACCOUNT}:log-group:RDS*",
                    f"arn:{_PARTITION}:logs:*:{_ACCOUNT}:log-group:RDS*:log-stream:*",
                ],
            },
            {
                # The VPC flow logs role (infra/components/network.py): its own log group
                # `/dbplatform/<stack>/vpc-flow-logs[-<region>]`; without this the boundary would
                # silently stop the delivery its inline policy grants.
                "Sid": "VpcFlowLogs",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogStream",
                    "logs:DescribeLogGroups",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                "Resource": [
                    f"arn:{_PARTITION}:logs:*:{_ACCOUNT}:log-group:/{PROJECT}/*/vpc-flow-logs*",
                ],
            },
            {
                "Sid": "BackupAndRestoreOfRds",
                "Effect": "Allow",
                "Action": ["rds:*", "backup:*", "tag:GetResources"],
                "Resource": "*",
            },
            {
                "Sid": "KeysForBackups",
                "Effect": "Allow",
                "Action": [
                    "kms:CreateGrant",
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:RetireGrant",
                ],
                "Resource": "*",
            },
            {
                "Sid": "PassOnlyTheStacksRoles",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": f"arn:{_PARTITION}:iam::{_ACCOUNT}:role/{PROJECT}-*",
            },
        ],
    }


# A drill's parameter group: `Names(drill_stack(S, run)).parameter_group(family)`, i.e.
# `dbplatform-<S>-drill-<run>-postgres<major>` (infra/naming.py, dbplatform/dr/stackfile.py).
DRILL_PARAMETER_GROUPS = f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:pg:{GENERATED_PARAMETER_GROUPS}"


def _drill_resources() -> list[str]:
    return [f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:db:{p}" for p in DRILL_PREFIXES]


def drill_policy() -> dict[str, object]:
    """Restore into, verify and delete instances named and tagged as drills; nothing else."""
    restore = ["rds:RestoreDBInstanceFromDBSnapshot", "rds:RestoreDBInstanceToPointInTime"]
    # RebootDBInstance: a restored instance whose new parameter group is pending-reboot
    change = [
        "rds:ModifyDBInstance",
        "rds:DeleteDBInstance",
        "rds:AddTagsToResource",
        "rds:RebootDBInstance",
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Discover",
                "Effect": "Allow",
                "Action": sorted(
                    [
                        "rds:DescribeDBInstances",
                        "rds:DescribeDBSnapshots",
                        "rds:DescribeDBInstanceAutomatedBackups",
                        "rds:ListTagsForResource",
                        "backup:ListRecoveryPointsByBackupVault",
                        "backup:DescribeRecoveryPoint",
                        "backup:DescribeRestoreJob",
                        "cloudwatch:GetMetricStatistics",
                        "sts:GetCallerIdentity",
                        # the target region's groups (dbplatform/dr/restore.py find_groups)
                        "rds:DescribeDBSubnetGroups",
                        "rds:DescribeDBParameterGroups",
                        "ec2:DescribeSecurityGroups",
                    ]
                ),
                "Resource": "*",
            },
            {
                # A drill makes its own parameter group from the program's parameters, and its
                # teardown (or the janitor) deletes it: only drill-named groups, tagged as such.
                "Sid": "CreateOnlyDrillParameterGroups",
                "Effect": "Allow",
                "Action": ["rds:CreateDBParameterGroup"],
                "Resource": [DRILL_PARAMETER_GROUPS],
                "Condition": {"StringEquals": {f"aws:RequestTag/{PURPOSE_TAG}": ["dr-drill"]}},
            },
            {
                # Tags given to a create call are authorized again as rds:AddTagsToResource
                # (RDS User Guide, "Grant permission to tag Amazon RDS resources during
                # creation"): the restored instance and the drill's parameter group, with the
                # purpose tag. RDS has no key that tells a create from a later tagging, hence
                # the names: only the exact shapes this tool generates are drill-named (below).
                # An AWS Backup restore gives the instance the source's tags (RDS User Guide,
                # "Restoring from a DB snapshot", tagging considerations) and the drill tags it
                # afterwards, so an instance with this project's tags must stay taggable here.
                "Sid": "TagOnCreateOnlyDrillInstances",
                "Effect": "Allow",
                "Action": ["rds:AddTagsToResource"],
                "Resource": _drill_resources(),
                "Condition": {
                    "StringEquals": {f"aws:RequestTag/{PURPOSE_TAG}": list(DRILL_PURPOSES)}
                },
            },
            {
                "Sid": "TagOnCreateOnlyDrillParameterGroups",
                "Effect": "Allow",
                "Action": ["rds:AddTagsToResource"],
                "Resource": [DRILL_PARAMETER_GROUPS],
                "Condition": {"StringEquals": {f"aws:RequestTag/{PURPOSE_TAG}": ["dr-drill"]}},
            },
            {
                "Sid": "ChangeOnlyTaggedDrillParameterGroups",
                "Effect": "Allow",
                "Action": ["rds:ModifyDBParameterGroup", "rds:DeleteDBParameterGroup"],
                "Resource": [DRILL_PARAMETER_GROUPS],
                "Condition": {"StringEquals": {f"aws:ResourceTag/{PURPOSE_TAG}": ["dr-drill"]}},
            },
            {
                # A restore creates only a drill-named instance, and it must carry the purpose tag.
                "Sid": "RestoreOnlyDrillInstances",
                "Effect": "Allow",
                "Action": restore,
                "Resource": _drill_resources(),
                "Condition": {
                    "StringEquals": {f"aws:RequestTag/{PURPOSE_TAG}": list(DRILL_PURPOSES)}
                },
            },
            {
                # The restore reads its source (snapshot, automated backup, parameter, subnet and
                # option groups): those are named by the program, not by the drill.
                "Sid": "RestoreSources",
                "Effect": "Allow",
                "Action": restore,
                "Resource": [
                    f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:snapshot:*",
                    f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:auto-backup:*",
                    f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:pg:{PROJECT}-*",
                    f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:subgrp:{PROJECT}-*",
                    f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:og:default:*",
                ],
            },
            {
                # Modify (to drop deletion protection) and delete only tagged drill instances.
                "Sid": "ChangeOnlyTaggedDrillInstances",
                "Effect": "Allow",
                "Action": change,
                "Resource": _drill_resources(),
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{PURPOSE_TAG}": list(DRILL_PURPOSES)}
                },
            },
            {
                # Security review S-9: not any recovery point. The recovery point of an RDS
                # backup is the snapshot AWS Backup names `awsbackup:job-<id>` (AWS Backup Developer
                # Guide, "Restoring an Amazon RDS database"; its ARN is what RecoveryPointArn
                # holds), so the drill restores RDS backups only, never another service's (EBS, S3,
                # DynamoDB) recovery points. Neither ARN form names the vault, and StartRestoreJob
                # takes no vault condition key (Service Authorization Reference, AWS Backup), so
                # "this stack's vaults" cannot be expressed (docs/ci.md, "IAM").
                "Sid": "RestoreFromTheVault",
                "Effect": "Allow",
                "Action": ["backup:StartRestoreJob"],
                "Resource": [
                    f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:snapshot:awsbackup:job-*",
                ],
            },
            {
                "Sid": "PassOnlyTheBackupRole",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": f"arn:{_PARTITION}:iam::{_ACCOUNT}:role/{PROJECT}-*-backup",
                "Condition": {"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}},
            },
            {
                "Sid": "DrillMetrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"cloudwatch:namespace": list(DRILL_METRIC_NAMESPACES)}
                },
            },
            {
                # Only the operation locks (security review S-7), not the rest of ops/ (the
                # blue/green record lives there).
                "Sid": "OperationLock",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"],
                "Resource": [
                    f"arn:{_PARTITION}:ssm:*:{_ACCOUNT}:parameter{p}" for p in DRILL_LOCK_PARAMETERS
                ],
            },
            {
                "Sid": "NoKeyAdministration",
                "Effect": "Deny",
                "Action": _KMS_ADMIN_DENIED,
                "Resource": "*",
            },
            *_state_statements(write=False),
        ],
    }


def operator_policy(
    types: set[str], keys: Sequence[str] = (), attachable: Sequence[str] = ()
) -> dict[str, object]:
    """People running the operational commands: the deploy role's reach plus the commands' own
    calls (blue/green, secret rotation, DR), still without key administration."""
    policy = deploy_policy(types, keys, attachable)
    statements = [
        # a DR rebuild reads the source stack's secrets and writes the new stack's
        # (`<stack>-<region>`, dbplatform/dr/continuity.py): the project's secrets, no other's;
        # a rotation also lists a secret's versions (dbplatform/secrets/rotation.py)
        {
            **st,
            "Action": sorted([*st["Action"], "secretsmanager:ListSecretVersionIds"]),
            "Resource": PROJECT_SECRETS,
        }
        if st["Sid"] == "ReadThisStacksSecrets"
        else st
        for st in policy["Statement"]  # type: ignore[attr-defined]
    ]
    first_deny = next(i for i, st in enumerate(statements) if st["Effect"] == "Deny")
    statements.insert(
        first_deny,
        {
            "Sid": "OperationalCommands",
            "Effect": "Allow",
            "Action": sorted(
                [
                    "rds:CreateBlueGreenDeployment",
                    "rds:DescribeBlueGreenDeployments",
                    "rds:SwitchoverBlueGreenDeployment",
                    "rds:DeleteBlueGreenDeployment",
                    "rds:PromoteReadReplica",
                    "rds:CreateDBSnapshot",
                    "rds:DescribeDBSnapshots",
                    "secretsmanager:RotateSecret",
                    "ssm:GetParameter",
                    "ssm:PutParameter",
                    "ssm:DeleteParameter",
                ]
            ),
            "Resource": "*",
            "Condition": _tagged(stack_tag=False),
        },
    )
    return {"Version": "2012-10-17", "Statement": statements}


def policies(manifests: Sequence[Path]) -> dict[str, dict[str, object]]:
    """File name -> policy document, for the program the manifests describe."""
    types = declared_types(manifests)
    keys, attachable = tag_keys(manifests), managed_policies(manifests)
    return {
        "preview.json": preview_policy(types),
        "deploy.json": deploy_policy(types, keys, attachable),
        "drill.json": drill_policy(),
        "operator.json": operator_policy(types, keys, attachable),
        "boundary.json": boundary_policy(),
    }


def render(policy: dict[str, object]) -> str:
    return json.dumps(policy, indent=2, sort_keys=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.iam_policies",
        description="Write ci/iam/*.json from the program's synth manifests (tests/golden).",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a committed file differs"
    )
    check = parser.parse_args(argv).check
    manifests = sorted((ROOT / "tests" / "golden").glob("*.json"))
    stale = []
    for name, policy in policies(manifests).items():
        path = OUT / name
        text = render(policy)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"ci/iam is stale ({', '.join(stale)}): run python -m devtools.iam_policies")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
