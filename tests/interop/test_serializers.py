"""Confluent's Avro serializer and deserializer, with their default settings, producing a
product's events through meshline's gateway and reading them back: valid events reach the
product topic once each, refused ones its dead-letter topic with the reason."""

import json
import time

import pytest
from conftest import play

import consume
import produce

PRODUCT = "player.play-events"
SUBJECT = f"{PRODUCT}-value"
TYPE = "com.example.player.track.played"
SOURCE = "/player/interop"


def gather(bootstrap, registry_url, topic, wanted, group, reader_schema=None, also=frozenset(),
           timeout=90.0):
    """Reads `topic` from its beginning until every play id in `wanted` was seen (or the
    timeout), then for a few seconds more; answers every record whose play id is in `wanted` or
    `also` (ids that must not be there), in order, repeats included."""
    keep = set(wanted) | set(also)
    seen = []
    deadline = time.monotonic() + timeout
    for attributes, data, headers in consume.read(
            bootstrap, registry_url, topic, group, reader_schema, idle_seconds=timeout):
        if data["play_id"] in keep:
            seen.append((attributes, data, headers))
        if {d["play_id"] for _, d, _ in seen} >= set(wanted) or time.monotonic() > deadline:
            break
    # anything else the group reads now is a repeat, or an event that should not be here
    for attributes, data, headers in consume.read(
            bootstrap, registry_url, topic, group, reader_schema, idle_seconds=3.0):
        if data["play_id"] in keep:
            seen.append((attributes, data, headers))
    return seen


def by_play_id(records):
    out = {}
    for attributes, data, headers in records:
        out.setdefault(data["play_id"], []).append((attributes, data, headers))
    return out


def test_default_serializer_valid_events_once_in_the_product_refused_ones_in_the_dlq(
        bootstrap, registry_url, play_schema, unique, player_conf):
    # the serializer's defaults, and the player domain's credentials for its registry client
    publish = produce.Publisher(bootstrap, registry_url, PRODUCT, play_schema, TYPE, SOURCE,
                                registry_conf=player_conf)
    valid = {f"{unique}-{i}": play(f"{unique}-{i}", duration_ms=1000 + i) for i in range(20)}
    refused = {
        f"{unique}-negative": ("non_negative_duration", play(f"{unique}-negative", duration_ms=-5)),
        f"{unique}-country": ("known_country", play(f"{unique}-country", country="SWE")),
    }
    ids = {}
    for play_id, event in valid.items():
        ids[play_id] = publish(event, key=event["user_id"])
    for play_id, (_, event) in refused.items():
        ids[play_id] = publish(event, key=event["user_id"])
    assert publish.flush() == 0, "every event is acknowledged by the broker"

    forwarded = by_play_id(gather(bootstrap, registry_url, PRODUCT, set(valid),
                                  f"interop-{unique}-product", also=set(refused)))
    assert set(forwarded) == set(valid), "valid events only, each of them"
    for play_id, records in forwarded.items():
        assert len(records) == 1, f"{play_id} forwarded {len(records)} times"
        attributes, data, headers = records[0]
        assert data == valid[play_id]
        assert attributes["id"] == ids[play_id]
        assert attributes["type"] == TYPE
        assert attributes["source"] == SOURCE
        assert attributes["subject"] == "user-1"
        assert headers["content-type"] == "application/avro"

    letters = by_play_id(gather(bootstrap, registry_url, f"{PRODUCT}.dlq", set(refused),
                                f"interop-{unique}-dlq"))
    assert set(letters) == set(refused)
    for play_id, (rule, event) in refused.items():
        assert len(letters[play_id]) == 1, f"{play_id} dead-lettered {len(letters[play_id])} times"
        attributes, data, headers = letters[play_id][0]
        assert data == event, "a dead letter keeps the event as sent"
        assert attributes["id"] == ids[play_id]
        assert headers["meshline_reason"] == "rule_failed"
        assert headers["meshline_rule"] == rule
        assert headers["meshline_source_topic"] == f"{PRODUCT}.ingress"


def test_latest_version_serializer_leaves_the_rules_to_the_gateway(
        bootstrap, registry_url, unique):
    # the registered rule set is marked enableAt GATEWAY: the serializer runs no rule, so it
    # neither fails on the DLQ action it does not have nor refuses the invalid event itself; it
    # registers nothing, so it needs no credentials
    publish = produce.Publisher(bootstrap, registry_url, PRODUCT, None, TYPE, SOURCE,
                                {"use.latest.version": True, "auto.register.schemas": False})
    good, bad = play(f"{unique}-good"), play(f"{unique}-bad", duration_ms=-1)
    publish(good, key="user-1")
    publish(bad, key="user-1")
    assert publish.flush() == 0
    forwarded = by_play_id(gather(bootstrap, registry_url, PRODUCT, {good["play_id"]},
                                  f"interop-{unique}-product", also={bad["play_id"]}))
    [(_, data, _)] = forwarded[good["play_id"]]
    # written with the latest schema: the fields sent, and any later field at its default
    assert {k: data[k] for k in good} == good
    assert bad["play_id"] not in forwarded
    letters = by_play_id(gather(bootstrap, registry_url, f"{PRODUCT}.dlq", {bad["play_id"]},
                                f"interop-{unique}-dlq"))
    assert [h["meshline_rule"] for _, _, h in letters[bad["play_id"]]] == ["non_negative_duration"]


def test_topic_name_strategy_finds_the_products_schema_through_the_ingress_alias(
        bootstrap, registry_url, play_schema, unique, player_conf):
    # the subject naming Confluent's Java, Go and .NET serializers default to
    publish = produce.Publisher(bootstrap, registry_url, PRODUCT, play_schema, TYPE, SOURCE,
                                {"subject.name.strategy.type": "TOPIC"}, registry_conf=player_conf)
    event = play(f"{unique}-topic")
    publish(event, key="user-1")
    assert publish.flush() == 0
    forwarded = by_play_id(gather(bootstrap, registry_url, PRODUCT, {event["play_id"]},
                                  f"interop-{unique}"))
    assert [d for _, d, _ in forwarded[event["play_id"]]] == [event]


def test_a_foreign_source_is_refused_with_its_reason(
        bootstrap, registry_url, play_schema, unique, player_conf):
    publish = produce.Publisher(bootstrap, registry_url, PRODUCT, play_schema, TYPE, SOURCE,
                                registry_conf=player_conf)
    event = play(f"{unique}-foreign")
    publish(event, key="user-1", source="/labels/not-the-owner")
    assert publish.flush() == 0
    letters = by_play_id(gather(bootstrap, registry_url, f"{PRODUCT}.dlq", {event["play_id"]},
                                f"interop-{unique}"))
    assert [h["meshline_reason"] for _, _, h in letters[event["play_id"]]] == ["foreign_source"]


def test_zz_schema_evolution_round_trip(
        bootstrap, registry_url, sr, play_schema, unique, player_conf):
    """Named to run last: it adds a version to the product's subject."""
    v2 = json.loads(play_schema)
    v2["fields"].append({"name": "session_id", "type": ["null", "string"], "default": None})
    v2_text = json.dumps(v2)
    from confluent_kafka.schema_registry import Schema

    assert sr.test_compatibility(SUBJECT, Schema(v2_text, "AVRO")) is True
    v2_id = sr.register_schema(SUBJECT, Schema(v2_text, "AVRO"))
    latest = sr.get_latest_version(SUBJECT)
    assert latest.schema_id == v2_id
    assert latest.schema.rule_set.enable_at == "GATEWAY", "a new version keeps the contract"

    publish = produce.Publisher(bootstrap, registry_url, PRODUCT, v2_text, TYPE, SOURCE,
                                registry_conf=player_conf)
    new = play(f"{unique}-v2", session_id="s-1")
    publish(new, key="user-1")
    assert publish.flush() == 0
    # an old consumer reads the new event with the schema it was built with
    old_view = by_play_id(gather(bootstrap, registry_url, PRODUCT, {new["play_id"]},
                                 f"interop-{unique}-old", reader_schema=play_schema))
    [(_, data, _)] = old_view[new["play_id"]]
    assert "session_id" not in data
    assert data == {k: v for k, v in new.items() if k != "session_id"}
    # a new consumer sees the field
    new_view = by_play_id(gather(bootstrap, registry_url, PRODUCT, {new["play_id"]},
                                 f"interop-{unique}-new"))
    [(_, data, _)] = new_view[new["play_id"]]
    assert data["session_id"] == "s-1"

    # an incompatible change is refused and changes nothing
    v3 = json.loads(v2_text)
    v3["fields"].append({"name": "mandatory", "type": "string"})
    with pytest.raises(Exception) as refused:
        sr.register_schema(SUBJECT, Schema(json.dumps(v3), "AVRO"))
    assert getattr(refused.value, "error_code", None) == 409
    assert sr.get_latest_version(SUBJECT).schema_id == v2_id
