# out-of-order commit test for design (c): a long publisher txn commits after later ones were consumed
import psycopg
import os
DSN = os.environ.get("BENCH_DSN", "dbname=postgres")
pin = psycopg.connect(DSN); pc = pin.cursor()
pc.execute("INSERT INTO c.ready (slot, event_id, subscription) SELECT (SELECT cur FROM c.rot), gen_random_uuid(), 's1' FROM generate_series(1,7) RETURNING txid::text")
slow_txid = pc.fetchone()[0]
fast = psycopg.connect(DSN, autocommit=True); fc = fast.cursor()
fc.execute("INSERT INTO c.ready (slot, event_id, subscription) SELECT (SELECT cur FROM c.rot), gen_random_uuid(), 's1' FROM generate_series(1,5)")
got = []
for i in range(3):
    fc.execute("SELECT batch, id, txid::text FROM c.claim('s1', 500, 60)"); r = fc.fetchall(); got += r
    if r: fc.execute("UPDATE c.batches SET done = true WHERE seq = %s", (r[0][0],))
print("before slow commit: claimed", len(got), "slow txid rows among them:", sum(1 for x in got if x[2] == slow_txid))
pin.commit()
got2 = []
for i in range(3):
    fc.execute("SELECT batch, id, txid::text FROM c.claim('s1', 500, 60)"); r = fc.fetchall(); got2 += r
    if r: fc.execute("UPDATE c.batches SET done = true WHERE seq = %s", (r[0][0],))
print("after slow commit: claimed", len(got2), "slow txid rows:", sum(1 for x in got2 if x[2] == slow_txid))
