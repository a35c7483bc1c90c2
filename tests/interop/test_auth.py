"""The registry's access rules as Confluent's Python client meets them: reads open, writes with
a domain's token for its own subjects only, administration with the platform's token; a refused
write changes nothing."""

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from conftest import credentials

THING = json.dumps({"type": "record", "name": "Thing", "namespace": "auth",
                    "fields": [{"name": "id", "type": "string"}]})


def client(registry_url, conf=None):
    return SchemaRegistryClient({"url": registry_url, **(conf or {})})


def refused(call):
    with pytest.raises(SchemaRegistryError) as raised:
        call()
    return raised.value.http_status_code, raised.value.error_code


def test_reads_need_no_credentials(registry_url):
    anonymous = client(registry_url)
    assert "player.play-events-value" in anonymous.get_subjects()
    assert anonymous.get_latest_version("player.play-events-value").schema_id > 0


def test_a_write_without_credentials_is_refused_and_changes_nothing(registry_url, unique, sr):
    subject = f"player.auth-{unique}-value"
    anonymous = client(registry_url)
    assert refused(lambda: anonymous.register_schema(subject, Schema(THING, "AVRO"))) == (401, 40101)
    assert refused(lambda: anonymous.set_compatibility(subject, "NONE")) == (401, 40101)
    assert subject not in sr.get_subjects(deleted=True)
    # wrong credentials are refused, not taken as none
    stranger = client(registry_url, {"basic.auth.user.info": "player:mlt_not-a-token"})
    assert refused(lambda: stranger.get_subjects()) == (401, 40101)


def test_a_domain_writes_its_own_subjects_only(registry_url, tokens, unique, sr):
    player = client(registry_url, credentials(tokens, "player"))
    artists = client(registry_url, credentials(tokens, "artists"))
    own = f"player.auth-{unique}-value"
    assert player.register_schema(own, Schema(THING, "AVRO")) > 0
    assert player.set_compatibility(own, "FULL")["compatibility"] == "FULL"

    # another domain's subject: refused, and it stays as it was
    before = sr.get_versions("player.play-events-value")
    assert refused(lambda: artists.register_schema(own, Schema(THING, "AVRO"))) == (403, 40301)
    changed = json.loads(THING)
    changed["fields"].append({"name": "extra", "type": "string", "default": ""})
    assert refused(lambda: artists.register_schema(
        "player.play-events.ingress-value", Schema(json.dumps(changed), "AVRO"))) == (403, 40301)
    assert refused(lambda: artists.set_compatibility(own, "NONE")) == (403, 40301)
    assert sr.get_versions("player.play-events-value") == before
    assert sr.get_compatibility(own) == "FULL"

    # administration is the platform's: deletes, global settings, modes
    assert refused(lambda: player.delete_subject(own)) == (403, 40301)
    assert refused(lambda: player.set_compatibility(level="NONE")) == (403, 40301)
    assert refused(lambda: player.update_mode(own, "READONLY")) == (403, 40301)
    assert sr.get_versions(own) == [1]
    assert sr.delete_subject(own) == [1]


def test_a_bearer_token_is_a_credential_too(registry_url, tokens, unique):
    bearer = client(registry_url, {
        "bearer.auth.credentials.source": "STATIC_TOKEN",
        "bearer.auth.token": tokens["labels"],
        "bearer.auth.logical.cluster": "meshline",
        "bearer.auth.identity.pool.id": "-",
    })
    assert bearer.register_schema(f"labels.auth-{unique}-value", Schema(THING, "AVRO")) > 0
    assert refused(lambda: bearer.register_schema(
        f"player.auth-{unique}-value", Schema(THING, "AVRO"))) == (403, 40301)
