"""Fixtures of the interop suite: a running `meshline up` (started by tests/interop.rs, which
passes its addresses in the environment) and Confluent's clients with their default settings."""

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


@pytest.fixture
def sr(registry_url):
    """A fresh client (no cache) with the default settings."""
    return SchemaRegistryClient({"url": registry_url})


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
