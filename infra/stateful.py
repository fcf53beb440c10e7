"""Which resource types hold data or keys, and which of their properties force a replacement.

Shared by the offline infra diff, the preview reporter and the guardrails, so that "this change
would destroy the database" is decided in one place.

Source for the replacement-forcing properties: the Pulumi AWS provider's resource documentation
(properties marked "Changing this forces a new resource to be created"), which mirrors the
Terraform AWS provider's ForceNew schema flags, for pulumi-aws 7.x. Property names are the
Pulumi (camelCase) input names as they appear in `pulumi preview --json` and in our manifests.
"""

from __future__ import annotations

# type token -> short human description of what would be lost
STATEFUL_TYPES: dict[str, str] = {
    "aws:rds/instance:Instance": "RDS database instance (data)",
    "aws:rds/cluster:Cluster": "RDS cluster (data)",
    "aws:kms/key:Key": "KMS key (everything encrypted with it)",
    "aws:secretsmanager/secret:Secret": "Secrets Manager secret (credentials)",
    "aws:backup/vault:Vault": "AWS Backup vault (recovery points)",
    "aws:rds/parameterGroup:ParameterGroup": "DB parameter group (in use by instances)",
    "aws:rds/subnetGroup:SubnetGroup": "DB subnet group (in use by instances)",
}

# type token -> input properties whose change forces delete-and-recreate
REPLACE_ON_CHANGE: dict[str, frozenset[str]] = {
    "aws:rds/instance:Instance": frozenset(
        {
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
        }
    ),
    "aws:rds/cluster:Cluster": frozenset(
        {
            "clusterIdentifier",
            "engine",
            "storageEncrypted",
            "kmsKeyId",
            "databaseName",
            "masterUsername",
            "snapshotIdentifier",
            "restoreToPointInTime",
        }
    ),
    "aws:kms/key:Key": frozenset({"customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId"}),
    "aws:secretsmanager/secret:Secret": frozenset({"name", "namePrefix"}),
    "aws:backup/vault:Vault": frozenset({"name", "kmsKeyArn"}),
    "aws:rds/parameterGroup:ParameterGroup": frozenset({"name", "namePrefix", "family"}),
    "aws:rds/subnetGroup:SubnetGroup": frozenset({"name", "namePrefix"}),
}


def is_stateful(type_token: str) -> bool:
    """True for resource types whose deletion loses data or the means to read it."""
    return type_token in STATEFUL_TYPES


def replacement_properties(type_token: str, changed: set[str] | frozenset[str]) -> list[str]:
    """The changed top-level properties that force replacement of a resource of this type."""
    forcing = REPLACE_ON_CHANGE.get(type_token, frozenset())
    return sorted(p for p in changed if p.split(".")[0].split("[")[0] in forcing)
