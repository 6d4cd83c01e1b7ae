"""Smoke check of the Python Kafka client (aiokafka) against the local broker.

Creates a throwaway topic (``ti-check-<run>``, deleted afterwards: the platform's topics are left
alone, their consumers would dead-letter these messages), produces to it with the settings the
outbox relay uses (idempotent producer, acks=all), reads the messages back with a consumer group,
commits, and checks the committed offsets.

    .venv/bin/python deploy/local/check_aiokafka.py [--bootstrap 127.0.0.1:59092] [-n 20]
    .venv/bin/python deploy/local/check_aiokafka.py --topic T --produce-only N   # append N messages to T
    .venv/bin/python deploy/local/check_aiokafka.py --topic T --count-only       # count the messages of T

Exit status 0 when every produced message was consumed back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def produce(bootstrap: str, topic: str, n: int, run_id: str) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", client_id="ti-check")
    await producer.start()
    ids = []
    try:
        for i in range(n):
            event_id = f"{run_id}-{i}"
            value = json.dumps({"specversion": "1.0", "id": event_id, "type": "check"}).encode()
            md = await producer.send_and_wait(
                topic,
                value=value,
                key=f"subject-{i % 7}".encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
            assert md.offset >= 0
            ids.append(event_id)
    finally:
        await producer.stop()
    return ids


async def consume_all(bootstrap: str, topic: str, group: str | None) -> list[dict[str, object]]:
    """Read the topic from the beginning to its current end; commit when in a group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    out: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment():  # wait for the group to assign the partitions
            await consumer.getmany(timeout_ms=200)
            if time.monotonic() > deadline:
                raise TimeoutError("no partition assigned within 30 s")
        parts = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in parts])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    assert r.value is not None
                    out.append(json.loads(r.value))
            if time.monotonic() > deadline:
                raise TimeoutError("did not reach the end of the topic within 30 s")
        if group:
            await consumer.commit()
            committed = {tp: await consumer.committed(tp) for tp in parts}
            assert committed == ends, (committed, ends)
    finally:
        await consumer.stop()
    return out


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default=os.environ.get("TI_KAFKA_BOOTSTRAP", "127.0.0.1:59092"))
    ap.add_argument("--topic", help="an existing topic (default: a throwaway topic)")
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--produce-only", type=int, metavar="N")
    ap.add_argument("--count-only", action="store_true")
    args = ap.parse_args()

    run_id = uuid.uuid4().hex[:8]
    if args.count_only or args.produce_only is not None:
        if not args.topic:
            ap.error("--count-only and --produce-only need --topic")
        if args.count_only:
            print(len(await consume_all(args.bootstrap, args.topic, None)))
        else:
            ids = await produce(args.bootstrap, args.topic, args.produce_only, run_id)
            print(f"produced {len(ids)} messages to {args.topic} (run {run_id})")
        return 0

    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
    await admin.start()
    topic = args.topic or f"ti-check-{run_id}"
    try:
        topics = await admin.list_topics()
        print("platform topics:", sorted(t for t in topics if t.startswith("ti.")))
        if not args.topic:
            await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        t0 = time.monotonic()
        ids = await produce(args.bootstrap, topic, args.n, run_id)
        t1 = time.monotonic()
        seen = await consume_all(args.bootstrap, topic, f"ti-check-{run_id}")
        t2 = time.monotonic()
    finally:
        if not args.topic:
            await admin.delete_topics([topic])
        await admin.close()
    got = {str(e.get("id")) for e in seen}
    missing = [i for i in ids if i not in got]
    print(
        f"produced {len(ids)} (idempotent, acks=all) in {t1 - t0:.2f}s; "
        f"consumed {len(seen)} from {topic} in {t2 - t1:.2f}s; missing {len(missing)}"
    )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
