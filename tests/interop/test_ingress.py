"""The HTTP ingress against its OpenAPI document (docs/ingress.openapi.yaml): the document is
valid OpenAPI 3.1, and every answer the running ingress gives (each status it documents) has a
documented status and a body of the documented schema."""

import json
import os
import urllib.error
import urllib.request

import jsonschema
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from conftest import REPO, _env

PATH = "/v1/products/{id}/events"
TYPE = "com.example.player.track.played"


@pytest.fixture(scope="module")
def spec():
    document, _ = read_from_filename(str(REPO / "docs" / "ingress.openapi.yaml"))
    return document


@pytest.fixture(scope="module")
def ingress():
    return _env("MESHLINE_INGRESS_URL")


def event(event_id, country="SE"):
    return {
        "specversion": "1.0", "id": event_id, "source": "/player/openapi", "type": TYPE,
        "datacontenttype": "application/json",
        "data": {"play_id": event_id, "user_id": "u", "track_id": "t", "artist_id": "a",
                 "device": "MOBILE", "country": country, "started_at": 1795600000000,
                 "duration_ms": 1000, "completed": True, "context": None},
    }


def post(ingress, product, body, token=None, content_type="application/cloudevents+json"):
    """POSTs `body` (bytes) and answers the status, the headers and the JSON body."""
    request = urllib.request.Request(
        f"{ingress}{PATH.format(id=product)}", data=body, method="POST",
        headers={"Content-Type": content_type})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def documented(spec, status):
    """The documented response of `status`, its body's schema resolved."""
    responses = spec["paths"][PATH]["post"]["responses"]
    assert str(status) in responses, f"status {status} is not documented"
    response = responses[str(status)]
    schema = response["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return response, schema


def test_the_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_answer_is_documented_with_its_body(spec, ingress, tokens, unique):
    player, labels = tokens["player"], tokens["labels"]
    cases = [
        (202, "player.play-events", json.dumps(event(f"ok-{unique}")).encode(), player,
         "application/cloudevents+json"),
        (202, "player.play-events", json.dumps([event(f"b1-{unique}"), event(f"b2-{unique}")]).encode(),
         player, "application/cloudevents-batch+json"),
        (400, "player.play-events", json.dumps(event(f"bad-{unique}", country="SWE")).encode(),
         player, "application/cloudevents+json"),
        (400, "player.play-events", b"{not json", player, "application/cloudevents+json"),
        (401, "player.play-events", json.dumps(event(f"anon-{unique}")).encode(), None,
         "application/cloudevents+json"),
        (403, "player.play-events", json.dumps(event(f"foreign-{unique}")).encode(), labels,
         "application/cloudevents+json"),
        (404, "player.nothing", json.dumps(event(f"none-{unique}")).encode(), player,
         "application/cloudevents+json"),
        (413, "player.play-events", b"[" + b" " * (3 * 1024 * 1024 // 2) + b"]", player,
         "application/cloudevents-batch+json"),
        (415, "player.play-events", b"hello", player, "text/plain"),
    ]
    for expected, product, body, token, content_type in cases:
        status, headers, answer = post(ingress, product, body, token, content_type)
        assert status == expected, (expected, answer)
        response, schema = documented(spec, status)
        jsonschema.validate(answer, schema)
        for name in response.get("headers", {}):
            assert headers.get(name) is not None, f"{status} lacks its documented {name} header"
    # the refused event is named with its rule
    _, _, answer = post(ingress, "player.play-events",
                        json.dumps(event(f"bad2-{unique}", country="SWE")).encode(), player)
    assert answer["events"][0]["rule"] == "known_country"
