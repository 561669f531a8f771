"""Round trips through the Python CloudEvents SDK (the `cloudevents` package on PyPI).

  python cloudevents_sdk.py make   prints CloudEvents the SDK made: for each, its attributes,
                                   data, structured JSON and binary-mode headers and body
  python cloudevents_sdk.py read   reads {"structured": str, "headers": {..}, "body": str}
                                   items (a JSON list on stdin) with the SDK's from_json and
                                   from_http, and prints what it found in each mode
"""
import json
import sys

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_http, from_json


def described(event):
    return {"attributes": {k: v for k, v in event.get_attributes().items()}, "data": event.data}


def make():
    made = [
        CloudEvent(
            {
                "type": "com.example.order.placed",
                "source": "https://example.com/orders",
                "id": "order-1",
                "subject": "order/1",
                "time": "2024-05-01T10:00:00.5+02:00",
                "dataschema": "https://schemas.example.com/orders/com.example.order.placed/v3.json",
                "datacontenttype": "application/json",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "correlationid": "req-42",
                "partitionkey": "customer-9",
            },
            {"order_id": 1, "lines": [{"sku": "A-1", "qty": 2}], "note": "café, 100% \"fresh\""},
        ),
        # The SDK fills in the id (a UUID v4) and the time.
        CloudEvent({"type": "com.example.ping", "source": "/sensors/7"}, {"ok": True}),
        CloudEvent(
            {
                "type": "com.example.uuid",
                "source": "urn:example:svc",
                "id": "0190f5a4-8c3e-7d2a-9b1c-3d4e5f607182",
                "datacontenttype": "application/vnd.example+json",
            },
            [1, 2.5, None, "x"],
        ),
    ]
    out = []
    for event in made:
        _, structured = to_structured(event)
        headers, body = to_binary(event)
        item = described(event)
        item["structured"] = structured.decode("utf-8")
        item["headers"] = dict(headers)
        item["body"] = body.decode("utf-8")
        out.append(item)
    print(json.dumps(out))


def read():
    out = []
    for item in json.load(sys.stdin):
        structured = from_json(item["structured"])
        binary = from_http(item["headers"], item["body"].encode("utf-8"))
        out.append({"structured": described(structured), "binary": described(binary)})
    print(json.dumps(out))


if __name__ == "__main__":
    {"make": make, "read": read}[sys.argv[1]]()
