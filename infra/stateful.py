"""Which resource types hold data or keys, and which of their properties force a replacement.

Shared by the offline infra diff, the preview reporter and the guardrails, so that "this change
would destroy the database" is decided in one place.

The replacement-forcing properties, and what AWS refuses, are facts about the provider and the
cloud: they live with their sources in infra/provider_facts.py.
"""

from __future__ import annotations

from infra.provider_facts import FORCE_NEW

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

# type token -> input properties whose change forces delete-and-recreate (infra/provider_facts.py
# holds them with their sources)
REPLACE_ON_CHANGE: dict[str, frozenset[str]] = {t: frozenset(p) for t, p in FORCE_NEW.items()}


def is_stateful(type_token: str) -> bool:
    """True for resource types whose deletion loses data or the means to read it."""
    return type_token in STATEFUL_TYPES


def replacement_properties(type_token: str, changed: set[str] | frozenset[str]) -> list[str]:
    """The changed top-level properties that force replacement of a resource of this type."""
    forcing = REPLACE_ON_CHANGE.get(type_token, frozenset())
    return sorted(p for p in changed if p.split(".")[0].split("[")[0] in forcing)
