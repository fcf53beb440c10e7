"""How a manifest spells values it cannot know offline: outputs of resources not yet created, and
secrets (their plaintext never reaches a manifest); and which input holds a resource's policy. Its
own module so that what only needs these (the operations' redaction of arguments and logs, the
provider facts) does not load the manifest model."""

KNOWN_AFTER_DEPLOY = "(known after deploy)"
SECRET = "[secret]"

# Resource policies and the input that holds each: a key's, a vault's, a secret's, a role's
# trust, the Secrets Manager endpoint's (the guardrail no-public-resource-policy reads them; the
# infra diff compares them, with role policies besides: infra/provider_facts.POLICY_INPUTS).
RESOURCE_POLICIES: dict[str, str] = {
    "aws:kms/key:Key": "policy",
    "aws:kms/keyPolicy:KeyPolicy": "policy",
    "aws:backup/vaultPolicy:VaultPolicy": "policy",
    "aws:secretsmanager/secret:Secret": "policy",
    "aws:secretsmanager/secretPolicy:SecretPolicy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "policy",
}
