# Micro-benchmark of c.claim: a 100k-row window with late-committing txids in the xip list.
import psycopg, time, threading, os
DSN = os.environ.get("BENCH_DSN")
a = psycopg.connect(DSN, autocommit=True); ca = a.cursor()
ca.execute("INSERT INTO c.ready (slot, event_id, subscription) SELECT 0, gen_random_uuid(), 's1' FROM generate_series(1,100000)")
# 5 open publisher transactions with rows, so that later windows carry them in xip
opens = []
for i in range(5):
    o = psycopg.connect(DSN); oc = o.cursor()
    oc.execute("INSERT INTO c.ready (slot, event_id, subscription) SELECT 0, gen_random_uuid(), 's1' FROM generate_series(1,3)")
    opens.append(o)
ca.execute("INSERT INTO c.ready (slot, event_id, subscription) SELECT 0, gen_random_uuid(), 's1' FROM generate_series(1,100000)")
ca.execute("SELECT count(*) FROM c.claim('s1', 500, 60)"); print('first claim', ca.fetchone()[0])   # opens the window
for o in opens: o.commit()        # now visible: the next window's xip part has 5 txids
ca.execute("INSERT INTO c.ready (slot, event_id, subscription) SELECT 0, gen_random_uuid(), 's1' FROM generate_series(1,100)")
ts = []; tot = 0
c = psycopg.connect(DSN, autocommit=True); cur = c.cursor()
for i in range(400):
    t = time.perf_counter(); cur.execute("SELECT count(*) FROM c.claim('s1', 500, 60)"); n = cur.fetchone()[0]; ts.append(time.perf_counter() - t); tot += n
    cur.execute("UPDATE c.batches SET done = true WHERE NOT done")
ts.sort(); print('claims', len(ts), 'rows', tot, 'p50 %.2f ms p99 %.2f ms max %.2f' % (1000*ts[len(ts)//2], 1000*ts[int(len(ts)*.99)], 1000*ts[-1]))
