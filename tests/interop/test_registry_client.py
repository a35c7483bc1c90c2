"""Every method of Confluent's Python SchemaRegistryClient against meshline's registry, with the
client's default settings. The products of the repository's descriptors are registered by
`meshline up`; scratch subjects are named per test so tests never see one another's writes."""

import json

import pytest
from confluent_kafka.schema_registry import (
    AssociationCreateOrUpdateInfo,
    AssociationCreateOrUpdateRequest,
    ConfigCompatibilityLevel,
    Schema,
    SchemaReference,
    SchemaRegistryError,
    ServerConfig,
)

PRODUCT = "player.play-events"
SUBJECT = f"{PRODUCT}-value"

V1 = json.dumps({"type": "record", "name": "Thing", "namespace": "interop",
                 "fields": [{"name": "id", "type": "string"}]})
V2 = json.dumps({"type": "record", "name": "Thing", "namespace": "interop",
                 "fields": [{"name": "id", "type": "string"},
                            {"name": "size", "type": "long", "default": 0}]})
V2_BREAKING = json.dumps({"type": "record", "name": "Thing", "namespace": "interop",
                          "fields": [{"name": "id", "type": "string"},
                                     {"name": "size", "type": "long"}]})


def avro(text):
    return Schema(text, "AVRO")


def error_of(call):
    with pytest.raises(SchemaRegistryError) as raised:
        call()
    return raised.value


def test_schema_types_and_contexts(sr):
    assert sr.get_schema_types() == ["JSON", "PROTOBUF", "AVRO"]
    assert sr.get_contexts() == ["."]
    assert sr.config()["url"]


def test_a_products_latest_version_carries_its_contract_for_the_gateway(sr):
    latest = sr.get_latest_version(SUBJECT)
    assert latest.subject == SUBJECT
    assert latest.version >= 1
    assert latest.guid
    properties = latest.schema.metadata.properties.properties
    assert properties["owner"] == "player-squad"
    assert properties["cloudevents.types"] == "com.example.player.track.played"
    rules = latest.schema.rule_set
    # enforced by the gateway: Confluent's clients leave these rules alone
    assert rules.enable_at == "GATEWAY"
    names = [rule.name for rule in rules.domain_rules]
    assert "non_negative_duration" in names and "known_country" in names
    assert all(rule.on_failure == "DLQ" for rule in rules.domain_rules)


def test_versions_ids_and_guids_agree(sr):
    versions = sr.get_versions(SUBJECT)
    assert versions and versions == sorted(versions)
    first = sr.get_version(SUBJECT, versions[0])
    assert first.version == versions[0]
    by_id = sr.get_schema(first.schema_id)
    assert json.loads(by_id.schema_str)["name"] == "PlayEvent"
    assert sr.get_schema(first.schema_id, subject_name=SUBJECT).schema_str == by_id.schema_str
    assert sr.get_schema_by_guid(first.guid).schema_str == by_id.schema_str
    assert SUBJECT in sr.get_subjects_by_schema_id(first.schema_id)
    uses = sr.get_schema_versions(first.schema_id)
    assert any(u.subject == SUBJECT and u.version == first.version for u in uses)
    filtered = sr.get_schema_versions(first.schema_id, subject_name=SUBJECT)
    assert {u.subject for u in filtered} == {SUBJECT}
    error = error_of(lambda: sr.get_schema(987654))
    assert (error.http_status_code, error.error_code) == (404, 40403)


def test_subjects_list_products_not_their_aliases(sr):
    subjects = sr.get_subjects()
    for product in ["player.play-events", "artists.profile-changes", "labels.onboarded"]:
        assert f"{product}-value" in subjects
    assert f"{PRODUCT}.ingress-value" not in subjects
    assert sr.get_subjects(subject_prefix="player.") == [SUBJECT]
    assert sr.get_subjects(limit=1) == subjects[:1]
    assert sr.get_subjects(offset=1) == subjects[1:]
    assert set(subjects) <= set(sr.get_subjects(deleted=True))


def test_lookup_finds_a_products_schema_under_its_topics_subjects(sr, play_schema):
    latest = sr.get_latest_version(SUBJECT)
    # Python spells booleans False and True in these query strings
    found = sr.lookup_schema(SUBJECT, avro(play_schema))
    assert found.schema_id == sr.get_version(SUBJECT, 1).schema_id
    for topic in [f"{PRODUCT}.ingress", f"{PRODUCT}.dlq"]:
        via_alias = sr.lookup_schema(f"{topic}-value", avro(play_schema), deleted=True)
        assert via_alias.schema_id == found.schema_id
        assert via_alias.subject == SUBJECT
    # the same schema written otherwise is the same schema once normalized
    respelled = json.dumps(json.loads(play_schema), indent=4, sort_keys=True)
    assert sr.lookup_schema(SUBJECT, avro(respelled), normalize_schemas=True).schema_id == found.schema_id
    assert latest.schema_id >= found.schema_id


def test_latest_with_metadata(sr):
    latest = sr.get_latest_with_metadata(SUBJECT, {"owner": "player-squad", "domain": "player"})
    assert latest.subject == SUBJECT
    assert latest.schema_id == sr.get_latest_version(SUBJECT).schema_id
    error = error_of(lambda: sr.get_latest_with_metadata(SUBJECT, {"owner": "someone-else"}))
    assert (error.http_status_code, error.error_code) == (404, 40403)


def test_compatibility_checks_answer_with_pythons_booleans(sr, play_schema):
    assert sr.test_compatibility(SUBJECT, avro(play_schema)) is True
    assert sr.test_compatibility(SUBJECT, avro(play_schema), version=1, verbose=True) is True
    assert sr.test_compatibility_all_versions(SUBJECT, avro(play_schema)) is True
    broken = json.loads(play_schema)
    broken["fields"].append({"name": "session", "type": "string"})
    assert sr.test_compatibility(SUBJECT, avro(json.dumps(broken)), verbose=True) is False
    assert sr.test_compatibility_all_versions(SUBJECT, avro(json.dumps(broken))) is False
    # through the ingress topic's subject, as a client with default subject naming asks
    assert sr.test_compatibility(f"{PRODUCT}.ingress-value", avro(play_schema)) is True


def test_register_evolve_and_delete_a_subject(sr, unique):
    subject = f"interop.{unique}-value"
    first = sr.register_schema_full_response(subject, avro(V1))
    assert first.schema_id > 0
    assert sr.register_schema(subject, avro(V1)) == first.schema_id, "registering again is a no-op"
    assert sr.get_versions(subject) == [1]
    error = error_of(lambda: sr.register_schema(subject, avro(V2_BREAKING)))
    assert (error.http_status_code, error.error_code) == (409, 409)
    second = sr.register_schema(subject, avro(V2))
    assert second != first.schema_id
    assert sr.get_versions(subject) == [1, 2]
    assert sr.get_latest_version(subject).schema_id == second

    assert sr.delete_version(subject, 1) == 1
    assert sr.get_versions(subject) == [2]
    assert sr.get_versions(subject, deleted=True) == [1, 2]
    assert sr.get_versions(subject, deleted_only=True) == [1]
    assert sr.get_version(subject, 1, deleted=True).schema_id == first.schema_id
    assert sr.delete_version(subject, 1, permanent=True) == 1
    assert sr.get_versions(subject, deleted=True) == [2]

    assert sr.delete_subject(subject) == [2]
    assert subject not in sr.get_subjects()
    assert subject in sr.get_subjects(deleted=True)
    assert subject in sr.get_subjects(deleted_only=True)
    assert sr.delete_subject(subject, permanent=True) == [2]
    error = error_of(lambda: sr.get_versions(subject, deleted=True))
    assert (error.http_status_code, error.error_code) == (404, 40401)


def test_references_and_referenced_by(sr, unique):
    base = f"interop.{unique}.thing-value"
    user = f"interop.{unique}.holder-value"
    thing_id = sr.register_schema(base, avro(V1))
    holder = json.dumps({"type": "record", "name": "Holder", "namespace": "interop",
                         "fields": [{"name": "thing", "type": "interop.Thing"}]})
    holder_id = sr.register_schema(
        user, Schema(holder, "AVRO", [SchemaReference("interop.Thing", base, 1)]))
    assert sr.get_referenced_by(base, 1) == [holder_id]
    assert sr.get_version(user, 1).schema.references[0].subject == base
    assert thing_id != holder_id


def test_compatibility_level_and_config(sr, unique):
    subject = f"interop.{unique}-value"
    sr.register_schema(subject, avro(V1))
    assert sr.get_compatibility() == "BACKWARD"
    assert sr.set_compatibility(subject, "FULL")["compatibility"] == "FULL"
    assert sr.get_compatibility(subject) == "FULL"
    assert sr.get_config(subject).compatibility_level == ConfigCompatibilityLevel.FULL
    sr.set_config(subject, ServerConfig(compatibility_level=ConfigCompatibilityLevel.NONE))
    assert sr.get_config(subject).compatibility_level == ConfigCompatibilityLevel.NONE
    assert sr.register_schema(subject, avro(V2_BREAKING)) > 0, "NONE accepts anything"
    deleted = sr.delete_config(subject)
    assert deleted.compatibility_level == ConfigCompatibilityLevel.NONE
    error = error_of(lambda: sr.get_config(subject))
    assert (error.http_status_code, error.error_code) == (404, 40408)
    assert sr.get_config().compatibility_level == ConfigCompatibilityLevel.BACKWARD
    # a product's own level comes from its descriptor
    assert sr.get_compatibility(SUBJECT) == "BACKWARD"


def test_modes(sr, unique):
    subject = f"interop.{unique}-value"
    sr.register_schema(subject, avro(V1))
    assert sr.get_global_mode() == "READWRITE"
    assert sr.update_mode(subject, "READONLY") == "READONLY"
    assert sr.get_mode(subject) == "READONLY"
    error = error_of(lambda: sr.register_schema(subject, avro(V2)))
    assert (error.http_status_code, error.error_code) == (422, 42205)
    assert sr.delete_mode(subject) == "READONLY"
    assert sr.register_schema(subject, avro(V2)) > 0
    # the global mode, set and set back
    assert sr.update_global_mode("READONLY") == "READONLY"
    try:
        assert sr.get_global_mode() == "READONLY"
        error = error_of(lambda: sr.register_schema(f"interop.{unique}.other-value", avro(V1)))
        assert error.error_code == 42205
    finally:
        assert sr.update_global_mode("READWRITE", force=True) == "READWRITE"


def test_associations_name_a_products_subject_for_its_topics(sr, unique):
    found = sr.get_associations_by_resource_name(
        f"{PRODUCT}.ingress", "-", resource_type="topic", association_types=["value"])
    assert [(a.subject, a.resource_name, a.association_type) for a in found] == [
        (SUBJECT, f"{PRODUCT}.ingress", "value")]
    assert sr.get_associations_by_resource_name(f"{PRODUCT}.ingress", "-", association_types=["key"]) == []
    assert sr.get_associations_by_resource_name("no-such-topic", "-") == []

    # a team's own topic associated with an existing subject, then dissociated
    subject = f"interop.{unique}-value"
    sr.register_schema(subject, avro(V1))
    topic = f"interop.{unique}.copy"
    created = sr.create_association(AssociationCreateOrUpdateRequest(
        resource_name=topic, resource_namespace="-", resource_type="topic",
        associations=[AssociationCreateOrUpdateInfo(subject=subject, association_type="value")]))
    assert created.associations[0].subject == subject
    assert sr.get_latest_version(f"{topic}-value").schema_id == sr.get_latest_version(subject).schema_id
    sr.delete_associations(topic, resource_type="topic", association_types=["value"])
    assert sr.get_associations_by_resource_name(topic, "-") == []
    sr.clear_latest_caches()
    error = error_of(lambda: sr.get_latest_version(f"{topic}-value"))
    assert error.error_code == 40401


def test_caches_can_be_cleared(sr):
    sr.get_latest_version(SUBJECT)
    sr.clear_latest_caches()
    sr.clear_caches()
    assert sr.get_latest_version(SUBJECT).subject == SUBJECT


def test_bad_query_values_get_a_clear_error(registry_url):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{registry_url}/subjects?deleted=maybe")
    assert refused.value.code == 400
    body = json.loads(refused.value.read())
    assert body["error_code"] == 400 and "deleted" in body["message"]
    with urllib.request.urlopen(f"{registry_url}/subjects?deleted=TRUE") as answer:
        assert answer.status == 200
