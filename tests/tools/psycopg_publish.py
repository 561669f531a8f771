"""Publishes to pgbus from Python with psycopg 3: a row change through the trigger and an
event through pgbus.publish, in one transaction. Prints the id pgbus.publish returned.

argv[1]: the connection URL. prepare_threshold=None: no named prepared statements, which a
transaction-mode pooler before PgBouncer 1.21 cannot keep.
"""
import json
import sys

import psycopg
from psycopg.types.json import Jsonb

with psycopg.connect(sys.argv[1], prepare_threshold=None) as conn:
    with conn.transaction():
        conn.execute("INSERT INTO property (id, title) VALUES (%s, %s)", (7, "From Python"))
        (event_id,) = conn.execute(
            "SELECT pgbus.publish(%s, %s, %s, subject => %s, headers => %s)",
            ("listing.priced", Jsonb({"property_id": 7, "price_eur": 1200}), "python-service",
             "property/7", Jsonb({"correlation_id": "py-1"})),
        ).fetchone()
print(json.dumps({"id": str(event_id)}))
