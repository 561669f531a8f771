"""Reads a JetStream stream with nats-py (PyPI), an independent NATS client.

  python nats_stream.py <url> <stream> <filter subject>

Prints a JSON list of every message in the stream, in stream order: its sequence,
subject, headers and body (base64).
"""
import asyncio
import base64
import json
import sys

import nats
from nats.errors import TimeoutError as NatsTimeout


async def main(url, stream, subject):
    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    total = info.state.messages
    sub = await js.pull_subscribe(subject, stream=stream)
    out = []
    while len(out) < total:
        try:
            batch = await sub.fetch(batch=1000, timeout=5)
        except NatsTimeout:
            break
        for m in batch:
            out.append(
                {
                    "seq": m.metadata.sequence.stream,
                    "subject": m.subject,
                    "headers": dict(m.headers or {}),
                    "body": base64.b64encode(m.data).decode("ascii"),
                }
            )
            await m.ack()
    await nc.close()
    print(json.dumps({"stream_messages": total, "messages": out}))


asyncio.run(main(*sys.argv[1:4]))
