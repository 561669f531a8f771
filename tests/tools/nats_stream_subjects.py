"""Sets the subjects of an existing JetStream stream with nats-py (PyPI).

  python nats_stream_subjects.py <url> <stream> <subject> [<subject> ...]
"""
import asyncio
import sys

import nats


async def main(url, stream, subjects):
    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    config = info.config
    config.subjects = subjects
    await js.update_stream(config)
    await nc.close()


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
