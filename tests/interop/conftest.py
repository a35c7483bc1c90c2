"""Fixtures of the interop suite: a running `meshline up` (started by tests/interop.rs, which
passes its addresses in the environment) and Confluent's clients with their default settings."""

import json
import os
import pathlib
import sys
import uuid
from datetime import datetime, timezone

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

REPO = pathlib.Path(os.environ.get("MESHLINE_REPO", pathlib.Path(__file__).parents[2]))
# the cookbook's code is what the suite runs
sys.path.insert(0, str(REPO / "docs" / "cookbook"))


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run this suite through `cargo test --test interop`")
    return value


@pytest.fixture(scope="session")
def bootstrap():
    return _env("MESHLINE_BOOTSTRAP")


@pytest.fixture(scope="session")
def registry_url():
    return _env("MESHLINE_REGISTRY_URL")


@pytest.fixture(scope="session")
def tokens():
    """The tokens `meshline up` generated, by principal (each domain, and `platform`)."""
    return json.loads(_env("MESHLINE_TOKENS_JSON"))


def credentials(tokens, principal):
    """Confluent's client setting for a principal's token."""
    return {"basic.auth.user.info": f"{principal}:{tokens[principal]}"}


@pytest.fixture
def sr(registry_url, tokens):
    """A fresh client (no cache) with the default settings and the platform's credentials."""
    return SchemaRegistryClient({"url": registry_url, **credentials(tokens, "platform")})


@pytest.fixture
def player_conf(tokens):
    """The player domain's credentials, as a serializer's registry client takes them."""
    return credentials(tokens, "player")


@pytest.fixture(scope="session")
def play_schema():
    return (REPO / "schemas" / "player" / "play-event.avsc").read_text()


@pytest.fixture
def unique():
    return uuid.uuid4().hex[:12]


def play(play_id, duration_ms=183000, country="SE", **extra):
    """One PlayEvent's data."""
    event = {
        "play_id": play_id,
        "user_id": "user-1",
        "track_id": "track-1",
        "artist_id": "artist-1",
        "device": "MOBILE",
        "country": country,
        # timestamp-millis: the deserializer answers a datetime
        "started_at": datetime.fromtimestamp(1795600000, tz=timezone.utc),
        "duration_ms": duration_ms,
        "completed": True,
        "context": None,
    }
    event.update(extra)
    return event
