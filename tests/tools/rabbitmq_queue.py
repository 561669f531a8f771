"""Sets up and reads a RabbitMQ queue with pika (PyPI), an independent AMQP client.

  python rabbitmq_queue.py setup <url> <exchange> <queue> <binding key>
      declares a durable topic exchange and a durable queue bound to it
  python rabbitmq_queue.py read <url> <queue>
      prints a JSON list of every message in the queue (taken off it): routing key,
      properties, headers and body (base64)
"""
import base64
import json
import sys

import pika


def connect(url):
    return pika.BlockingConnection(pika.URLParameters(url))


def setup(url, exchange, queue, binding):
    conn = connect(url)
    ch = conn.channel()
    ch.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    ch.queue_declare(queue=queue, durable=True)
    ch.queue_bind(queue=queue, exchange=exchange, routing_key=binding)
    conn.close()


def text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read(url, queue):
    conn = connect(url)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    out = []
    for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=2):
        if method is None:
            break
        out.append(
            {
                "routing_key": method.routing_key,
                "exchange": method.exchange,
                "message_id": props.message_id,
                "type": props.type,
                "content_type": props.content_type,
                "delivery_mode": props.delivery_mode,
                "timestamp": props.timestamp,
                "headers": {k: text(v) for k, v in (props.headers or {}).items()},
                "body": base64.b64encode(body).decode("ascii"),
            }
        )
    ch.cancel()
    conn.close()
    print(json.dumps(out))


if sys.argv[1] == "setup":
    setup(*sys.argv[2:6])
else:
    read(*sys.argv[2:4])
