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

    python -m devtools.iam_policies          # rewrite ci/iam/*.json
    python -m devtools.iam_policies --check  # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

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
            "CreateKey",
            "PutKeyPolicy",
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
            "CreateRole",
            "DeleteRole",
            "UpdateRole",
            "UpdateAssumeRolePolicy",
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
# `<project>-<stack>-rc-<run>`; dbplatform/dr/stackfile.py drill_stack: `<stack>-drill-<run>`,
# so its instances are `<project>-<stack>-drill-<run>-...`) and the purpose tag they carry
# (dbplatform/dr/restore.py TAG_PURPOSE).
DRILL_PREFIXES = (f"{PROJECT}-*-rc-*", f"{PROJECT}-*-drill-*")
DRILL_PURPOSES = ("restore-check", "dr-drill", "dr-rebuild")
PURPOSE_TAG = "dbplatform:purpose"

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


def preview_policy(types: set[str]) -> dict[str, object]:
    """Read-only: what `pulumi preview` and refresh read, the state, and decrypting it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadWhatTheProgramDeclares",
                "Effect": "Allow",
                "Action": _actions(operations(types, write=False)),
                "Resource": "*",
            },
            *_state_statements(write=False),
        ],
    }


# KMS key administration stays with people (security review H-1): CI never deletes or disables
# a key, and never re-enables one an operator disabled.
_KMS_ADMIN_DENIED = ["kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CancelKeyDeletion"]


def deploy_policy(types: set[str]) -> dict[str, object]:
    """Reads anywhere; writes only on resources tagged project/stack or named with the prefix."""
    reads = operations(types, write=False)
    everything = operations(types, write=True)
    writes = {s: everything[s] - reads.get(s, set()) for s in everything}
    creates = sorted(a for a in _actions(writes) if a.split(":")[1].startswith("Create"))
    others = sorted(a for a in _actions(writes) if a not in creates)
    prefix = f"{PROJECT}-${{Stack}}-*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadWhatTheProgramDeclares",
                "Effect": "Allow",
                "Action": _actions(reads),
                "Resource": "*",
            },
            {
                # Creates must carry the stack's tags (the program's base_tags), so every later
                # change is limited to what this stack created.
                "Sid": "CreateTaggedForThisStack",
                "Effect": "Allow",
                "Action": creates,
                "Resource": "*",
                "Condition": {
                    "StringEqualsIfExists": {
                        "aws:RequestTag/project": PROJECT,
                        "aws:RequestTag/stack": "${Stack}",
                    }
                },
            },
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
                    f"arn:{_PARTITION}:iam::{_ACCOUNT}:role/{prefix}",
                    f"arn:{_PARTITION}:route53:::healthcheck/*",
                    f"arn:{_PARTITION}:secretsmanager:*:{_ACCOUNT}:secret:{PROJECT}/${{Stack}}/*",
                    f"arn:{_PARTITION}:backup:*:{_ACCOUNT}:backup-vault:{prefix}",
                    f"arn:{_PARTITION}:cloudformation:*:{_ACCOUNT}:stack/serverlessrepo-{prefix}/*",
                ],
            },
            {
                # Only the program's own roles are handed to RDS monitoring and AWS Backup.
                "Sid": "PassOnlyTheStacksServiceRoles",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": f"arn:{_PARTITION}:iam::{_ACCOUNT}:role/{prefix}",
                "Condition": {
                    "StringEquals": {
                        "iam:PassedToService": [
                            "monitoring.rds.amazonaws.com",
                            "backup.amazonaws.com",
                        ]
                    }
                },
            },
            {
                "Sid": "NoKeyAdministration",
                "Effect": "Deny",
                "Action": _KMS_ADMIN_DENIED,
                "Resource": "*",
            },
            *_state_statements(write=True),
        ],
    }


def _drill_resources() -> list[str]:
    return [f"arn:{_PARTITION}:rds:*:{_ACCOUNT}:db:{p}" for p in DRILL_PREFIXES]


def drill_policy() -> dict[str, object]:
    """Restore into, verify and delete instances named and tagged as drills; nothing else."""
    restore = ["rds:RestoreDBInstanceFromDBSnapshot", "rds:RestoreDBInstanceToPointInTime"]
    change = ["rds:ModifyDBInstance", "rds:DeleteDBInstance", "rds:AddTagsToResource"]
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
                    ]
                ),
                "Resource": "*",
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
                "Sid": "RestoreFromTheVault",
                "Effect": "Allow",
                "Action": ["backup:StartRestoreJob"],
                "Resource": f"arn:{_PARTITION}:backup:*:{_ACCOUNT}:recovery-point:*",
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
                "Condition": {"StringEquals": {"cloudwatch:namespace": "dbplatform"}},
            },
            {
                "Sid": "OperationLock",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"],
                "Resource": f"arn:{_PARTITION}:ssm:*:{_ACCOUNT}:parameter/{PROJECT}/*/ops/*",
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


def operator_policy(types: set[str]) -> dict[str, object]:
    """People running the operational commands: the deploy role's reach plus the commands' own
    calls (blue/green, secret rotation, DR), still without key administration."""
    policy = deploy_policy(types)
    statements = list(policy["Statement"])  # type: ignore[call-overload]
    statements.insert(
        -4,
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
    return {
        "preview.json": preview_policy(types),
        "deploy.json": deploy_policy(types),
        "drill.json": drill_policy(),
        "operator.json": operator_policy(types),
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
