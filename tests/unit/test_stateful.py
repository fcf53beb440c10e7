"""Which changes replace a resource: what the infra diff and the preview report warn about."""

from __future__ import annotations

from infra.stateful import is_stateful, replacement_properties

INSTANCE = "aws:rds/instance:Instance"


def test_changes_that_recreate_a_db_instance_are_named_and_in_place_ones_are_not() -> None:
    changed = {"availabilityZone", "instanceClass", "kmsKeyId", "tags.owner", "allocatedStorage"}
    assert replacement_properties(INSTANCE, changed) == ["availabilityZone", "kmsKeyId"]
    assert replacement_properties(INSTANCE, {"storageEncrypted"}) == ["storageEncrypted"]


def test_nested_paths_count_by_their_top_level_property() -> None:
    changed = {"restoreToPointInTime.restoreTime", "parameters[0].value"}
    assert replacement_properties(INSTANCE, changed) == ["restoreToPointInTime.restoreTime"]
    assert replacement_properties("aws:rds/parameterGroup:ParameterGroup", {"family"}) == ["family"]


def test_data_holders_are_stateful_and_rules_are_not() -> None:
    assert is_stateful(INSTANCE) and is_stateful("aws:kms/key:Key")
    assert not is_stateful("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    # SetTopicAttributes changes a display name; a name is the topic's identity
    assert replacement_properties("aws:sns/topic:Topic", {"displayName"}) == []
    assert replacement_properties("aws:sns/topic:Topic", {"name"}) == ["name"]
