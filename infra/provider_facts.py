"""What the AWS provider and AWS itself do with a change: the one data file behind every
"update in place / replace / refused" verdict of the infra diff, the preview report and the day-2
catalogue (docs/day2-changes.md). Every fact names its source.

Property names are Pulumi's camelCase input names, as in `pulumi preview --json` and in our
manifests. pulumi-aws is a bridge over terraform-provider-aws: a property the Terraform schema
marks `ForceNew: true` is one Pulumi replaces the resource for. The schemas were read in the
provider's source (hashicorp/terraform-provider-aws, files named per fact); what AWS refuses was
read in the botocore service models shipped in `.venv` (the API reference text) and the AWS and
Pulumi documentation named per fact. Nothing here is from memory.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass

from policy.markers import RESOURCE_POLICIES

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
VAULT = "aws:backup/vault:Vault"
VAULT_LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
SECRET = "aws:secretsmanager/secret:Secret"
KMS_KEY = "aws:kms/key:Key"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"

SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"

_TF = "terraform-provider-aws"
_SG_RULE_SCHEMA = (
    f"{_TF} internal/service/ec2/vpc_security_group_ingress_rule.go: `security_group_id` "
    "`RequiresReplace`; the rest is updated by ModifySecurityGroupRules"
)
_RDS_SCHEMA = f"{_TF} internal/service/rds/instance.go, schema `ForceNew: true`"


def _schema(file: str) -> str:
    """The source of a `ForceNew: true` read in the provider's schema (file under service/)."""
    return f"{_TF} internal/service/{file}, schema `ForceNew: true`"


def _replace(file: str) -> str:
    """The source of a `RequiresReplace` plan modifier (framework resource, file under service/)."""
    return f"{_TF} internal/service/{file}, `RequiresReplace` plan modifier"


# type token -> replacement-forcing input -> source
FORCE_NEW: dict[str, dict[str, str]] = {
    RDS_INSTANCE: dict.fromkeys(
        (
            "identifier",
            "identifierPrefix",
            "availabilityZone",
            "engine",
            "storageEncrypted",
            "kmsKeyId",
            "dbName",
            "username",
            "characterSetName",
            "ncharCharacterSetName",
            "snapshotIdentifier",
            "restoreToPointInTime",
            "s3Import",
            "timezone",
            "customIamInstanceProfile",
        ),
        _RDS_SCHEMA,
    ),
    RDS_CLUSTER: dict.fromkeys(
        (
            "clusterIdentifier",
            "engine",
            "storageEncrypted",
            "kmsKeyId",
            "databaseName",
            "masterUsername",
            "snapshotIdentifier",
            "restoreToPointInTime",
        ),
        f"{_TF} internal/service/rds/cluster.go, schema `ForceNew: true`",
    ),
    # Any change of keepers (or of the id's shape) draws a new id: the point of keepers.
    "random:index/randomId:RandomId": dict.fromkeys(
        ("keepers", "byteLength", "prefix"),
        "terraform-provider-random internal/provider/resource_id.go, attributes with "
        "`RequiresReplace` plan modifiers",
    ),
    KMS_KEY: dict.fromkeys(
        ("customKeyStoreId", "customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId"),
        f"{_TF} internal/service/kms/key.go, schema `ForceNew: true`",
    ),
    SECRET: dict.fromkeys(
        ("name", "namePrefix"),
        f"{_TF} internal/service/secretsmanager/secret.go, schema `ForceNew: true`",
    ),
    VAULT: dict.fromkeys(
        ("name", "kmsKeyArn"),
        f"{_TF} internal/service/backup/vault.go, schema `ForceNew: true`",
    ),
    # Every argument: the resource has no Update function at all.
    VAULT_LOCK: dict.fromkeys(
        ("backupVaultName", "changeableForDays", "maxRetentionDays", "minRetentionDays"),
        f"{_TF} internal/service/backup/vault_lock_configuration.go, schema `ForceNew: true` "
        "(no Update function)",
    ),
    PARAMETER_GROUP: dict.fromkeys(
        ("name", "namePrefix", "family", "description"),
        f"{_TF} internal/service/rds/parameter_group.go, schema `ForceNew: true`",
    ),
    SUBNET_GROUP: dict.fromkeys(
        ("name", "namePrefix"),
        f"{_TF} internal/service/rds/subnet_group.go, schema `ForceNew: true`",
    ),
    SECURITY_GROUP: {
        "name": f"{_TF} internal/service/ec2/vpc_security_group.go, schema `ForceNew: true`",
        "namePrefix": f"{_TF} internal/service/ec2/vpc_security_group.go, schema `ForceNew: true`",
        "vpcId": f"{_TF} internal/service/ec2/vpc_security_group.go, schema `ForceNew: true`",
        "description": (
            "pulumi_aws 7.51.1 ec2/security_group.py: description 'maps to the AWS "
            "GroupDescription attribute, for which there is no Update API'"
        ),
    },
    # Ports, CIDRs and descriptions change in place (ModifySecurityGroupRules in Update).
    SG_INGRESS_RULE: {"securityGroupId": _SG_RULE_SCHEMA},
    SG_EGRESS_RULE: {"securityGroupId": _SG_RULE_SCHEMA},
    METRIC_ALARM: {
        "name": f"{_TF} internal/service/cloudwatch/metric_alarm.go: `alarm_name` `ForceNew: true`",
    },
    # The network. A VPC's CIDR is never changed in place: a new `network.cidr` (or `dr.cidr`)
    # replaces the VPC and, through their vpcId, everything in it (the manifest shows no vpcId
    # change: the id is known only after deploy).
    VPC: {
        **dict.fromkeys(
            ("cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"), _schema("ec2/vpc_.go")
        ),
        "instanceTenancy": f"{_TF} internal/service/ec2/vpc_.go: CustomizeDiff `ForceNew` on "
        "`instance_tenancy` unless it goes from dedicated to default",
    },
    # The program reads the subnets' zones at every run (DescribeAvailabilityZones, state
    # available), so it ignores a zone change once a subnet exists (infra/components/network.py).
    # (`ipv6CidrBlock` is replaced only when assignIpv6AddressOnCreation was true: CustomizeDiff.)
    SUBNET: dict.fromkeys(
        (
            "availabilityZone",
            "availabilityZoneId",
            "cidrBlock",
            "ipv4IpamPoolId",
            "ipv4NetmaskLength",
            "ipv6IpamPoolId",
            "ipv6Native",
            "ipv6NetmaskLength",
            "outpostArn",
            "vpcId",
        ),
        _schema("ec2/vpc_subnet.go"),
    ),
    "aws:ec2/routeTable:RouteTable": {"vpcId": _schema("ec2/vpc_route_table.go")},
    "aws:ec2/route:Route": dict.fromkeys(
        (
            "routeTableId",
            "destinationCidrBlock",
            "destinationIpv6CidrBlock",
            "destinationPrefixListId",
        ),
        _schema("ec2/vpc_route.go"),
    ),
    # routeTableId is updated in place (ReplaceRouteTableAssociation).
    "aws:ec2/routeTableAssociation:RouteTableAssociation": dict.fromkeys(
        ("gatewayId", "subnetId"), _schema("ec2/vpc_route_table_association.go")
    ),
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": dict.fromkeys(
        ("peerOwnerId", "peerRegion", "peerVpcId", "vpcId"),
        _schema("ec2/vpc_peering_connection.go"),
    ),
    # `privateDnsEnabled` is replaced only for Gateway endpoints (CustomizeDiff); ours is an
    # Interface endpoint.
    "aws:ec2/vpcEndpoint:VpcEndpoint": {
        **dict.fromkeys(
            (
                "resourceConfigurationArn",
                "serviceName",
                "serviceNetworkArn",
                "serviceRegion",
                "vpcEndpointType",
                "vpcId",
            ),
            _schema("ec2/vpc_endpoint.go"),
        ),
        "dnsOptions": f"{_TF} internal/service/ec2/vpc_endpoint.go: `dns_options` nested "
        "`private_dns_preference`, `private_dns_specified_domains` `ForceNew: true`",
    },
    # Every argument but tags: the Update function changes tags only.
    "aws:ec2/flowLog:FlowLog": dict.fromkeys(
        (
            "deliverCrossAccountRole",
            "destinationOptions",
            "eniId",
            "iamRoleArn",
            "logDestination",
            "logDestinationType",
            "logFormat",
            "maxAggregationInterval",
            "regionalNatGatewayId",
            "subnetId",
            "trafficType",
            "transitGatewayAttachmentId",
            "transitGatewayId",
            "vpcId",
        ),
        _schema("ec2/vpc_flow_log.go"),
    ),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": {
        "vpcId": _schema("ec2/vpc_default_security_group.go"),
    },
    "aws:cloudwatch/logGroup:LogGroup": dict.fromkeys(
        ("logGroupClass", "name", "namePrefix"), _schema("logs/group.go")
    ),
    "aws:cloudwatch/dashboard:Dashboard": {
        "dashboardName": _schema("cloudwatch/dashboard.go"),
    },
    "aws:cloudwatch/eventRule:EventRule": dict.fromkeys(
        ("eventBusName", "name", "namePrefix"), _schema("events/rule.go")
    ),
    "aws:cloudwatch/eventTarget:EventTarget": dict.fromkeys(
        ("eventBusName", "rule", "targetId"), _schema("events/target.go")
    ),
    "aws:sns/topic:Topic": dict.fromkeys(
        ("fifoTopic", "name", "namePrefix"), _schema("sns/topic.go")
    ),
    "aws:sns/topicPolicy:TopicPolicy": {"arn": _schema("sns/topic_policy.go")},
    # `topic` is the provider's `topic_arn` (pulumi-aws renames it).
    "aws:sns/topicSubscription:TopicSubscription": dict.fromkeys(
        ("endpoint", "protocol", "topic"), _schema("sns/topic_subscription.go")
    ),
    "aws:iam/role:Role": dict.fromkeys(("name", "namePrefix", "path"), _schema("iam/role.go")),
    "aws:iam/rolePolicy:RolePolicy": dict.fromkeys(
        ("name", "namePrefix", "role"), _schema("iam/role_policy.go")
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": dict.fromkeys(
        ("policyArn", "role"), _schema("iam/role_policy_attachment.go")
    ),
    "aws:kms/alias:Alias": dict.fromkeys(("name", "namePrefix"), _schema("kms/alias.go")),
    "aws:rds/eventSubscription:EventSubscription": dict.fromkeys(
        ("name", "namePrefix"), _schema("rds/event_subscription.go")
    ),
    # Every argument: the resource has no Update function at all.
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication": (
        dict.fromkeys(
            ("kmsKeyId", "preSignedUrl", "retentionPeriod", "sourceDbInstanceArn"),
            f"{_TF} internal/service/rds/instance_automated_backups_replication.go, schema "
            "`ForceNew: true` (no Update function)",
        )
    ),
    "aws:route53/healthCheck:HealthCheck": dict.fromkeys(
        ("measureLatency", "referenceName", "requestInterval", "routingControlArn", "type"),
        _schema("route53/health_check.go"),
    ),
    "aws:backup/plan:Plan": {"name": _schema("backup/plan.go")},
    # Every argument: the resource has no Update function at all (the provider's `condition` and
    # `selection_tag` blocks are pulumi-aws's `conditions` and `selectionTags`).
    "aws:backup/selection:Selection": dict.fromkeys(
        (
            "conditions",
            "iamRoleArn",
            "name",
            "notResources",
            "planId",
            "resources",
            "selectionTags",
        ),
        f"{_TF} internal/service/backup/selection.go, schema `ForceNew: true` (no Update function)",
    ),
    "aws:backup/vaultPolicy:VaultPolicy": {"backupVaultName": _schema("backup/vault_policy.go")},
    "aws:backup/restoreTestingPlan:RestoreTestingPlan": {
        "name": _replace("backup/restore_testing_plan.go"),
    },
    "aws:backup/restoreTestingSelection:RestoreTestingSelection": dict.fromkeys(
        ("name", "protectedResourceType", "restoreTestingPlanName"),
        _replace("backup/restore_testing_selection.go"),
    ),
    # A new secret value is a new version: secretString is replaced, never updated.
    "aws:secretsmanager/secretVersion:SecretVersion": dict.fromkeys(
        ("secretId", "secretBinary", "secretString", "secretStringWoVersion"),
        _schema("secretsmanager/secret_version.go"),
    ),
    "aws:secretsmanager/secretRotation:SecretRotation": {
        "secretId": _schema("secretsmanager/secret_rotation.go"),
    },
    "aws:serverlessrepository/cloudFormationStack:CloudFormationStack": dict.fromkeys(
        ("applicationId", "name"), _schema("serverlessrepo/cloudformation_stack.go")
    ),
    # Any change of the password's shape draws a new password (`keepers`:
    # RequiresReplaceIfValuesNotNull; `overrideSpecial`: not from "" to null).
    "random:index/randomPassword:RandomPassword": dict.fromkeys(
        (
            "keepers",
            "length",
            "lower",
            "minLower",
            "minNumeric",
            "minSpecial",
            "minUpper",
            "number",
            "numeric",
            "overrideSpecial",
            "special",
            "upper",
        ),
        "terraform-provider-random internal/provider/resource_password.go, attributes with "
        "`RequiresReplace` plan modifiers",
    ),
}


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """A change the cloud (or the Pulumi engine) refuses: `pulumi up` fails at that step."""

    id: str
    """stable key, cited by the diff's messages and the day-2 catalogue"""
    who: str
    """AWS or Pulumi"""
    rule: str
    """the rule, for people"""
    error: str
    """the error code the refusal comes back with"""
    source: str
    """where the rule is written down"""


_BOTO = "botocore {model}: {where}"

REFUSALS: dict[str, Refusal] = {
    r.id: r
    for r in (
        Refusal(
            id="pulumi-protect",
            who="Pulumi",
            rule="a resource with `protect` cannot be deleted or replaced: the engine stops the "
            "update before touching anything",
            error="resource ... cannot be deleted because it is protected",
            source="Pulumi docs, resource option `protect`",
        ),
        Refusal(
            id="rds-deletion-protection",
            who="AWS",
            rule="DeleteDBInstance fails while the instance has deletion protection, also when "
            "the delete is half of a replacement",
            error="InvalidParameterCombination",
            source=_BOTO.format(
                model="rds 2014-10-31",
                where="ModifyDBInstance.DeletionProtection: 'The database can't be deleted when "
                "deletion protection is enabled'",
            ),
        ),
        Refusal(
            id="rds-storage-shrink",
            who="AWS",
            rule="allocated storage only grows: a decrease is refused by ModifyDBInstance (and "
            "while autoscaling is on the provider hides the decrease, so the config silently "
            "stops describing the instance)",
            error="InvalidParameterValue",
            source=_BOTO.format(
                model="rds 2014-10-31",
                where="ModifyDBInstance.AllocatedStorage: 'must be at least 10% greater than "
                "the current value'",
            )
            + f"; {_TF} internal/service/rds/instance.go `allocated_storage` DiffSuppressFunc",
        ),
        Refusal(
            id="rds-engine-downgrade",
            who="AWS",
            rule="RDS upgrades an engine, never downgrades it: a lower engineVersion than the "
            "running one is refused",
            error="InvalidParameterCombination (Cannot upgrade postgres from X to Y)",
            source=_BOTO.format(
                model="rds 2014-10-31",
                where="ModifyDBInstance.EngineVersion: 'The version number of the database "
                "engine to upgrade to'",
            )
            + f"; {_TF} internal/service/rds `compareActualEngineVersion` and PR #49496",
        ),
        Refusal(
            id="rds-major-upgrade-not-allowed",
            who="AWS",
            rule="a different major version needs AllowMajorVersionUpgrade, which the program "
            "never sets: major upgrades go through `dbplatform bluegreen`",
            error="InvalidParameterCombination",
            source=_BOTO.format(
                model="rds 2014-10-31",
                where="ModifyDBInstance.AllowMajorVersionUpgrade: 'Major version upgrades must "
                "be allowed when specifying a value for the EngineVersion parameter that's a "
                "different major version'",
            ),
        ),
        Refusal(
            id="rds-replica-final-snapshot",
            who="AWS",
            rule="a read replica cannot take a final snapshot: deleting one with "
            "skipFinalSnapshot false is refused",
            error="InvalidParameterCombination",
            source=_BOTO.format(
                model="rds 2014-10-31",
                where="DeleteDBInstance.FinalDBSnapshotIdentifier: 'Can't be specified when "
                "deleting a read replica'",
            ),
        ),
        Refusal(
            id="unique-name",
            who="AWS",
            rule="Pulumi replaces create-before-delete unless deleteBeforeReplace is set; with "
            "a fixed physical name the new resource's create collides with the old one",
            error="see UNIQUE_NAMES",
            source="Pulumi docs, resource option `deleteBeforeReplace`; error codes per type in "
            "UNIQUE_NAMES",
        ),
        Refusal(
            id="backup-vault-lock-immutable",
            who="AWS",
            rule="after `changeableForDays` the vault lock is immutable: it can be neither "
            "changed nor deleted, and every change to the resource is a delete-and-create",
            error="InvalidRequestException",
            source=_BOTO.format(
                model="backup 2018-11-15",
                where="PutBackupVaultLockConfiguration.ChangeableForDays: 'On and after the "
                "lock date, the Vault Lock becomes immutable and cannot be changed or deleted'; "
                "DeleteBackupVaultLockConfiguration",
            ),
        ),
        Refusal(
            id="kms-lockout",
            who="AWS",
            rule="CreateKey and PutKeyPolicy refuse a key policy that would not let the calling "
            "principal make a later PutKeyPolicy (the policy lockout safety check): a guarded "
            "key's Deny on kms:PutKeyPolicy must exempt the role that runs `pulumi up`",
            error="MalformedPolicyDocumentException",
            source=_BOTO.format(
                model="kms 2014-11-01",
                where="CreateKeyRequest.Policy: 'The key policy must allow the calling principal "
                "to make a subsequent PutKeyPolicy request on the KMS key'; "
                "CreateKeyRequest.BypassPolicyLockoutSafetyCheck",
            ),
        ),
        Refusal(
            id="ec2-subnet-in-use",
            who="AWS",
            rule="a subnet is deleted only when nothing runs in it: replacing the subnets of a DB "
            "subnet group a database uses fails at the delete, and the database does not move "
            "with them (move it by a restore into the new network, as dr rebuild does)",
            error="DependencyViolation",
            source=_BOTO.format(
                model="ec2 2016-11-15",
                where="DeleteSubnet: 'You must terminate all running instances in the subnet "
                "before you can delete the subnet'",
            ),
        ),
        Refusal(
            id="backup-vault-not-empty",
            who="AWS",
            rule="a backup vault can be deleted only when it holds no recovery point",
            error="InvalidRequestException",
            source=_BOTO.format(
                model="backup 2018-11-15",
                where="DeleteBackupVault: 'A vault can be deleted only if it is empty'",
            ),
        ),
    )
}

# type token -> (error code of a create under a name in use, source). Names per account and
# Region (per VPC for security groups).
UNIQUE_NAMES: dict[str, tuple[str, str]] = {
    RDS_INSTANCE: (
        "DBInstanceAlreadyExists",
        _BOTO.format(model="rds 2014-10-31", where="DBInstanceAlreadyExistsFault"),
    ),
    PARAMETER_GROUP: (
        "DBParameterGroupAlreadyExists",
        _BOTO.format(model="rds 2014-10-31", where="DBParameterGroupAlreadyExistsFault"),
    ),
    SUBNET_GROUP: (
        "DBSubnetGroupAlreadyExists",
        _BOTO.format(model="rds 2014-10-31", where="DBSubnetGroupAlreadyExistsFault"),
    ),
    SECURITY_GROUP: (
        "InvalidGroup.Duplicate",
        _BOTO.format(
            model="ec2 2016-11-15",
            where="CreateSecurityGroup.GroupName: 'must be unique within the VPC'",
        )
        + "; the code from the EC2 API reference 'Error codes'",
    ),
    SECRET: (
        "ResourceExistsException",
        _BOTO.format(model="secretsmanager 2017-10-17", where="CreateSecret, ResourceExists"),
    ),
    VAULT: (
        "AlreadyExistsException",
        _BOTO.format(model="backup 2018-11-15", where="CreateBackupVault, AlreadyExists"),
    ),
}

# type token -> the input that makes AWS refuse a delete while it is true
DELETION_PROTECTION: dict[str, str] = {
    RDS_INSTANCE: "deletionProtection",
    RDS_CLUSTER: "deletionProtection",
}

# Resource policies whose Deny statements are protection: removing one weakens the stack.
# type token -> input holding the policy document (JSON text)
POLICY_INPUTS: dict[str, str] = {
    **RESOURCE_POLICIES,
    # what a role may do
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/policy:Policy": "policy",
}


# input -> the value that protects (weakened when protecting before and not after). Input names
# are the pulumi-aws schema's: rds Instance/Cluster `deletionProtection`, `skipFinalSnapshot`;
# backup Vault `forceDestroy`.
PROTECTIVE_INPUTS: dict[str, object] = {
    "deletionProtection": True,
    "skipFinalSnapshot": False,
    "forceDestroy": False,
}
# The inputs of a vault lock (all ForceNew in the provider, immutable in AWS once locked).
LOCK_INPUTS = ("minRetentionDays", "maxRetentionDays", "changeableForDays")


def deny_statements(document: object) -> dict[str, str]:
    """The Deny statements of a policy document (JSON text), keyed by Sid or canonical text."""
    return statements_of(document, "Deny")


def allow_statements(document: object) -> dict[str, str]:
    """The Allow statements of a policy document (JSON text), keyed by Sid or canonical text."""
    return statements_of(document, "Allow")


def statements_of(document: object, effect: str) -> dict[str, str]:
    """The statements of one Effect of a policy document (JSON text), keyed by Sid or canonical
    text, each as canonical JSON without its Sid; none when the document is not known JSON."""
    if not isinstance(document, str):
        return {}
    try:
        data = json.loads(document)
    except ValueError:
        return {}
    statements = data.get("Statement") if isinstance(data, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    out: dict[str, str] = {}
    for st in statements if isinstance(statements, list) else []:
        if isinstance(st, dict) and st.get("Effect") == effect:
            body = json.dumps({k: v for k, v in st.items() if k != "Sid"}, sort_keys=True)
            out[str(st.get("Sid") or body)] = body
    return out


def policy_loosened(before: object, after: object) -> list[tuple[str, str, str | None]]:
    """(kind, statement, change) for each way `after` (a policy's JSON text) may let more in than
    `before`: a Deny removed or changed ("policyDeny", also when `after` is not known JSON: it
    fails closed), an Allow added or changed ("policyAllow"; a changed Allow may be narrower,
    which a person judges). No policy before counts as an empty one; a policy that is not known
    JSON on either side (known only after deploy, a secret) and changed is an Allow of unknown
    reach."""
    before, after = (json.dumps(d) if isinstance(d, dict) else d for d in (before, after))
    out: list[tuple[str, str, str | None]] = []
    denies_new = deny_statements(after)
    for sid, body in sorted(deny_statements(before).items()):
        if denies_new.get(sid) != body:
            out.append(("policyDeny", sid, "changed" if sid in denies_new else None))
    if before == after:
        return out
    if (before is not None and not _json_object(before)) or (
        after is not None and not _json_object(after)
    ):
        # a placeholder (known after deploy, a secret) or not a policy on either side: what it
        # lets in cannot be told, so it fails closed
        out.append(("policyAllow", "(the whole policy)", "not known until deploy"))
        return out
    allows_old = allow_statements(before)
    for sid, body in sorted(allow_statements(after).items()):
        if allows_old.get(sid) != body:
            out.append(("policyAllow", sid, "changed" if sid in allows_old else "added"))
    return out


def _json_object(document: object) -> bool:
    """Whether `document` is a policy's JSON text (not a placeholder of a value to come)."""
    if not isinstance(document, str):
        return False
    try:
        return isinstance(json.loads(document), dict)
    except ValueError:
        return False


def locks_out(document: str, principal_arn: str, action: str = "kms:PutKeyPolicy") -> bool:
    """Whether a Deny of the key policy (JSON text) applies `action` to `principal_arn`.

    Evaluates what the program writes: a Deny naming the action (or `kms:*`) applies unless an
    `ArnNotLike`/`ArnNotEquals` on aws:PrincipalArn lists the principal; any other condition is
    taken to apply (the lockout check cannot rely on it either). Fact "kms-lockout".
    """
    statements = json.loads(document)["Statement"]
    for st in statements if isinstance(statements, list) else [statements]:
        if st.get("Effect") != "Deny":
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        exempt: list[str] = []
        for op in ("ArnNotLike", "ArnNotEquals"):
            arns = st.get("Condition", {}).get(op, {}).get("aws:PrincipalArn", [])
            exempt += [arns] if isinstance(arns, str) else arns
        if not any(fnmatch.fnmatchcase(principal_arn, a) for a in exempt):
            return True
    return False


def refusal(fact_id: str) -> Refusal:
    """The fact with that id (KeyError names it when a caller cites one that does not exist)."""
    return REFUSALS[fact_id]
