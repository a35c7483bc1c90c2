"""Attacks on a running `meshline up`, as anyone who can reach it would make them: each gets a
clear refusal or a dead letter, every component stays up, nothing is written outside the data
directory, and the events behind an attack go through."""

import base64
import json
import os
import pathlib
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer

from conftest import _env

PRODUCT = "player.play-events"
TYPE = "com.example.player.track.played"


def call(url, method="GET", body=None, token=None, principal="platform"):
    """(status, parsed JSON or text) of one request."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/vnd.schemaregistry.v1+json")
    if token:
        basic = base64.b64encode(f"{principal}:{token}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        status = error.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def all_up(registry_url):
    """Every component of `up` still answers."""
    assert call(f"{registry_url}/subjects")[0] == 200
    ingress = _env("MESHLINE_INGRESS_URL")
    assert call(f"{ingress}/healthz")[0] == 200


def test_references_outside_the_import_root_write_nothing(registry_url, tokens, tmp_path):
    line = 'syntax = "proto3";\npackage hostile;\nmessage Line { string sku = 1; }'
    status, _ = call(f"{registry_url}/subjects/player.hostile-line/versions", "POST",
                     {"schemaType": "PROTOBUF", "schema": line}, tokens["player"], "player")
    assert status == 200
    try:
        references_outside_the_import_root_write_nothing(registry_url, tokens, tmp_path)
    finally:
        # the subject goes again: other tests list the subjects
        call(f"{registry_url}/subjects/player.hostile-line", "DELETE", None, tokens["platform"])
        call(f"{registry_url}/subjects/player.hostile-line?permanent=true", "DELETE", None,
             tokens["platform"])


def references_outside_the_import_root_write_nothing(registry_url, tokens, tmp_path):
    target = tmp_path / "written_by_a_reference.proto"
    for name in [str(target), "../../../../tmp/hostile.proto", "file:///tmp/hostile.proto"]:
        importing = (f'syntax = "proto3";\npackage hostile;\nimport "{name}";\n'
                     "message Basket { repeated Line lines = 1; }")
        body = {"schemaType": "PROTOBUF", "schema": importing,
                "references": [{"name": name, "subject": "player.hostile-line", "version": 1}]}
        # anonymous (a compatibility check is a read) and with a domain's token
        status, answer = call(
            f"{registry_url}/compatibility/subjects/player.hostile-line/versions", "POST", body)
        assert 400 <= status < 500, (name, status, answer)
        assert "is not an import path" in json.dumps(answer), answer
        status, answer = call(f"{registry_url}/subjects/player.hostile-basket/versions", "POST",
                              body, tokens["player"], "player")
        assert status == 422, (name, status, answer)
    assert not target.exists()
    assert not pathlib.Path("/tmp/hostile.proto").exists()
    all_up(registry_url)


def test_schemas_nested_10000_deep_leave_every_component_up(registry_url):
    deep = 'syntax = "proto3";\n' + "message M { " * 10_000 + "}" * 10_000
    status, answer = call(f"{registry_url}/compatibility/subjects/player.play-events-value/versions",
                          "POST", {"schemaType": "PROTOBUF", "schema": deep})
    assert 400 <= status < 500, (status, answer)
    assert "at most 64" in json.dumps(answer), answer
    deep_avro = '{"type":"array","items":' * 10_000 + '"int"' + "}" * 10_000
    status, _ = call(f"{registry_url}/compatibility/subjects/player.play-events-value/versions",
                     "POST", {"schema": deep_avro})
    assert 400 <= status < 500
    all_up(registry_url)


def test_a_contract_cannot_claim_another_domains_sources(registry_url, tokens):
    subject = f"{PRODUCT}-value"
    status, latest = call(f"{registry_url}/subjects/{subject}/versions/latest")
    assert status == 200
    metadata = latest["metadata"]
    metadata["properties"]["cloudevents.source"] = "/"
    body = {"schema": latest["schema"], "metadata": metadata, "ruleSet": latest.get("ruleSet")}
    status, answer = call(f"{registry_url}/subjects/{subject}/versions", "POST", body,
                          tokens["player"], "player")
    assert status == 422, answer
    assert "not under `/player`" in json.dumps(answer)


def test_trickled_headers_are_cut_off(registry_url):
    host, port = urllib.parse.urlparse(registry_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as trickle:
        trickle.sendall(b"GET /subjects HTTP/1.1\r\nhost: x\r\n")
        started = time.monotonic()
        trickle.settimeout(30)
        # closed by the server's header timeout (10 s by default): a read that times out raises
        answer = trickle.recv(1024)
        assert not answer.startswith(b"HTTP/1.1 200"), answer
        assert time.monotonic() - started < 25
    all_up(registry_url)


def test_a_header_heavy_record_does_not_stall_its_partition(bootstrap, registry_url, tokens):
    # labels.onboarded: no other test reads its topics
    product, run = "labels.onboarded", uuid.uuid4().hex[:8]
    kind = "com.example.labels.label.onboarded"
    # a client that raised its own size limit writes a record of about 1.04 MB, nearly all
    # headers, into partition 0 of the ingress topic
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000})
    headers = [("ce_specversion", b"1.0"), ("ce_id", f"heavy-{run}".encode()),
               ("ce_source", b"/labels/hostile"), ("ce_type", kind.encode()),
               ("content-type", b"application/avro")]
    headers += [(f"x-filler-{i:04}", b"h" * 1000) for i in range(1040)]
    producer.produce(f"{product}.ingress", value=b"\0\0\0\0\1", headers=headers, partition=0)
    assert producer.flush(30) == 0
    # then valid events over HTTP, behind it in the same partition (the product has one)
    ingress = _env("MESHLINE_INGRESS_URL")
    ids = [f"after-{run}-{i}" for i in range(12)]
    for event_id in ids:
        event = {"specversion": "1.0", "id": event_id, "source": "/labels/hostile", "type": kind,
                 "datacontenttype": "application/json",
                 "data": {"label_id": event_id, "name": "n", "country": "SE", "tier": "INDIE",
                          "catalog_size": 3, "distributor": None,
                          "onboarded_at": 1795600000000}}
        request = urllib.request.Request(f"{ingress}/v1/products/{product}/events",
                                         data=json.dumps(event).encode(), method="POST")
        request.add_header("Content-Type", "application/cloudevents+json")
        request.add_header("Authorization", f"Bearer {tokens['labels']}")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
    found, letter = set(), None
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hostile-{run}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([product, f"{product}.dlq"])
    deadline = time.monotonic() + 90
    try:
        while (len(found) < len(ids) or letter is None) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            got = dict(message.headers() or [])
            event_id = (got.get("ce_id") or b"").decode()
            if message.topic() == product and event_id in ids:
                found.add(event_id)
            if message.topic() == f"{product}.dlq" and event_id == f"heavy-{run}":
                letter = (got, message.value())
    finally:
        consumer.close()
    assert found == set(ids), f"stalled: {len(found)} of {len(ids)} events went through"
    assert letter is not None, "the heavy record has no dead letter"
    got, payload = letter
    # cut to fit: too_large, the contract's own verdict in the message
    assert got["meshline_reason"] == b"too_large", got["meshline_reason"]
    assert b"the contract refused it too (" in got["meshline_message"]
    assert b"left out to fit" in got["meshline_message"], got["meshline_message"]
    assert b"of its headers" in got["meshline_message"]
    assert not payload, "a letter cut to fit carries no payload"
    assert got["meshline_source_partition"] == b"0"
    all_up(registry_url)
