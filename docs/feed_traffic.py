#!/usr/bin/env python3
"""Traffic for the dashboard picture, next to `meshline up --demo`: a misbehaving legacy client
that writes raw records to `player.play-events.ingress` with a plain Kafka client (foreign
source, undeclared type, truncated Avro: dead letters the SDK would have refused), and an HTTP
client posting batches to the ingress (availability).

    python3 docs/feed_traffic.py --token <player token printed by meshline up> --minutes 5

Needs confluent-kafka (`pip install confluent-kafka`).
"""

import argparse
import json
import time
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer

INGRESS = "player.play-events.ingress"


def template(bootstrap):
    """One valid record the demo wrote, to derive bad ones from."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"feed-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([INGRESS])
    try:
        while True:
            m = c.poll(5)
            if m is not None and m.error() is None:
                return m.key(), dict(m.headers() or []), m.value()
    finally:
        c.close()


def play(i):
    return {
        "specversion": "1.0", "id": f"http-{uuid.uuid4()}", "source": "/player/web",
        "type": "com.example.player.track.played", "subject": f"user-{i % 50}",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "datacontenttype": "application/json",
        "data": {"play_id": str(uuid.uuid4()), "user_id": f"user-{i % 50}",
                 "track_id": f"track-{i % 200}", "artist_id": f"artist-{i % 40}",
                 "device": "WEB", "country": "SE", "started_at": int(time.time() * 1000),
                 "duration_ms": 1000 + i, "completed": True, "context": None},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--http", default="http://127.0.0.1:8080")
    ap.add_argument("--token", required=True)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--bad-per-second", type=float, default=8)
    args = ap.parse_args()

    key, headers, value = template(args.bootstrap)
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    breakages = [
        ("ce_source", b"/labels/legacy-importer", value),
        ("ce_type", b"com.example.player.track.skipped", value),
        (None, None, value[: len(value) // 2]),
    ]
    end = time.time() + args.minutes * 60
    i = 0
    while time.time() < end:
        tick = time.time()
        for _ in range(int(args.bad_per_second)):
            name, replaced, payload = breakages[i % len(breakages)]
            h = dict(headers, ce_id=f"legacy-{uuid.uuid4()}".encode())
            if name:
                h[name] = replaced
            producer.produce(INGRESS, payload, key, headers=list(h.items()))
            i += 1
        producer.poll(0)
        batch = json.dumps([play(i + n) for n in range(20)]).encode()
        request = urllib.request.Request(
            f"{args.http}/v1/products/player.play-events/events", data=batch, method="POST",
            headers={"Authorization": f"Bearer {args.token}",
                     "Content-Type": "application/cloudevents-batch+json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 202, r.status
        time.sleep(max(0.0, 1 - (time.time() - tick)))
    producer.flush(10)
    print(f"wrote {i} bad records")


if __name__ == "__main__":
    main()
