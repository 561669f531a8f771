#!/usr/bin/env python3
"""Claim-design benchmark under a pinned xmin horizon.  Usage:
   bench.py DESIGN steady  [--rate R] [--target N] [--warm S] [--after S] [--max-pinned S]
   bench.py DESIGN drain   [--rows N]
DESIGN in a b c d (see sql/schema.sql).  Prints JSON lines; human summary to stderr."""
import argparse, json, threading, time, statistics, sys
import psycopg

DSN = "dbname=postgres"
LEASE = 60.0

INSERT = {
 'a': "INSERT INTO a.deliveries (event_id, subscription, priority, run_at) SELECT gen_random_uuid(), 's1', 0, now() FROM generate_series(1, %s)",
 'b': "INSERT INTO b.deliveries (event_id, subscription, priority, run_at) SELECT gen_random_uuid(), 's1', 0, now() FROM generate_series(1, %s)",
 'c': "INSERT INTO c.ready (slot, event_id, subscription, priority) SELECT (SELECT cur FROM c.rot), gen_random_uuid(), 's1', 0 FROM generate_series(1, %s)",
 'd': "INSERT INTO d.deliveries (slot, event_id, subscription, priority, run_at) SELECT (SELECT cur FROM d.rot), gen_random_uuid(), 's1', 0, now() FROM generate_series(1, %s)",
}
CLAIM_A = """WITH picked AS (
  SELECT d.id, d.state FROM a.deliveries d
  WHERE d.subscription = 's1' AND d.state < 2 AND d.solo = false AND d.run_at <= now()
  ORDER BY d.priority, d.run_at, d.id LIMIT %(n)s FOR UPDATE SKIP LOCKED),
upd AS (UPDATE a.deliveries d SET state = 1, attempts = d.attempts + (p.state = 0)::int4,
         run_at = now() + %(lease)s * interval '1 second', lease_id = l.id
  FROM picked p, (SELECT pg_current_xact_id()::text::int8 AS id) l
  WHERE d.id = ANY (ARRAY(SELECT id FROM picked)) AND d.id = p.id
  RETURNING d.id, d.event_id, d.lease_id)
SELECT id, event_id, lease_id FROM upd"""
CLAIM_B = """WITH c AS (SELECT id FROM b.deliveries WHERE subscription = 's1' AND run_at <= now()
  ORDER BY priority, run_at, id LIMIT %(n)s FOR UPDATE SKIP LOCKED)
DELETE FROM b.deliveries d USING c WHERE d.id = c.id RETURNING d.id, d.event_id"""
CLAIM_D = """WITH picked AS (
  SELECT d.slot, d.id, d.state FROM d.deliveries d
  WHERE d.subscription = 's1' AND d.state < 2 AND d.solo = false AND d.run_at <= now()
  ORDER BY d.priority, d.run_at, d.id LIMIT %(n)s FOR UPDATE SKIP LOCKED),
upd AS (UPDATE d.deliveries d SET state = 1, attempts = d.attempts + (p.state = 0)::int4,
         run_at = now() + %(lease)s * interval '1 second', lease_id = l.id
  FROM picked p, (SELECT pg_current_xact_id()::text::int8 AS id) l
  WHERE d.id = ANY (ARRAY(SELECT id FROM picked)) AND d.slot = p.slot AND d.id = p.id
  RETURNING d.slot, d.id, d.event_id, d.lease_id)
SELECT slot, id, event_id, lease_id FROM upd"""
CLAIM_C = "SELECT batch, id, txid::text, event_id, attempts FROM c.claim('s1', %(n)s, %(lease)s)"

def size_of(cur, design):
    cur.execute("""SELECT coalesce(sum(pg_total_relation_size(c.oid)),0)::bigint,
                          coalesce(sum(s.n_dead_tup),0)::bigint, coalesce(sum(s.n_live_tup),0)::bigint
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                   WHERE n.nspname = %s AND c.relkind = 'r'""", (design,))
    return cur.fetchone()

class Consumer:
    def __init__(self, design, n=500):
        self.design, self.n = design, n
        self.conn = psycopg.connect(DSN, autocommit=(design != 'b'))
        self.cur = self.conn.cursor()
    def claim(self):
        d, cur = self.design, self.cur
        t0 = time.perf_counter()
        if d == 'a': cur.execute(CLAIM_A, {'n': self.n, 'lease': LEASE})
        elif d == 'b': cur.execute(CLAIM_B, {'n': self.n})
        elif d == 'c': cur.execute(CLAIM_C, {'n': self.n, 'lease': LEASE})
        elif d == 'd': cur.execute(CLAIM_D, {'n': self.n, 'lease': LEASE})
        rows = cur.fetchall()
        return rows, time.perf_counter() - t0
    def complete(self, rows):
        d, cur = self.design, self.cur
        if d == 'b':
            self.conn.commit(); return   # the handler ran inside the claiming transaction
        if not rows: return
        if d == 'a':
            cur.execute("DELETE FROM a.deliveries WHERE id = ANY(%s) AND state = 1 AND lease_id = ANY(%s)",
                        ([r[0] for r in rows], list({r[2] for r in rows})))
        elif d == 'd':
            cur.execute("DELETE FROM d.deliveries WHERE id = ANY(%s) AND slot = ANY(%s) AND state = 1 AND lease_id = ANY(%s)",
                        ([r[1] for r in rows], list({r[0] for r in rows}), list({r[3] for r in rows})))
        elif d == 'c':
            cur.execute("UPDATE c.batches SET done = true WHERE seq = %s AND NOT done", (rows[0][0],))

def producer(design, rate, stop, counter, per_tx=100):
    conn = psycopg.connect(DSN); cur = conn.cursor()
    interval = per_tx / rate; nxt = time.perf_counter()
    while not stop.is_set():
        cur.execute(INSERT[design], (per_tx,)); conn.commit()
        counter[0] += per_tx
        nxt += interval
        dt = nxt - time.perf_counter()
        if dt > 0: time.sleep(dt)
        elif dt < -1.0: nxt = time.perf_counter()   # do not try to catch up more than 1 s
    conn.close()

def rotator(design, stop, log, period='10 seconds'):
    conn = psycopg.connect(DSN, autocommit=True); cur = conn.cursor()
    cur.execute("SET lock_timeout = '100ms'")
    while not stop.is_set():
        try:
            cur.execute(f"SELECT {design}.rotate(%s)", (period,)); r = cur.fetchone()[0]
            if r: log.append((time.time(), r))
        except psycopg.errors.LockNotAvailable:
            log.append((time.time(), 'rot lock timeout'))
        stop.wait(1.0)
    conn.close()

def pct(xs, p):
    if not xs: return None
    xs = sorted(xs); return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]

def summarize(label, lat, rows, extra):
    d = {'phase': label, 'claims': len(lat),
         'p50_ms': round(1000 * pct(lat, 50), 2) if lat else None,
         'p99_ms': round(1000 * pct(lat, 99), 2) if lat else None,
         'max_ms': round(1000 * max(lat), 2) if lat else None,
         'rows_per_claim': round(sum(rows) / len(rows), 1) if rows else None}
    d.update(extra); print(json.dumps(d), flush=True)
    print(f"  {label:>14}: claims={d['claims']:6} p50={d['p50_ms']}ms p99={d['p99_ms']}ms max={d['max_ms']}ms "
          f"rows/claim={d['rows_per_claim']} {extra}", file=sys.stderr, flush=True)

def steady(args):
    design = args.design
    mon = psycopg.connect(DSN, autocommit=True).cursor()
    stop = threading.Event(); produced = [0]; rotlog = []
    threads = [threading.Thread(target=producer, args=(design, args.rate, stop, produced), daemon=True)]
    if design in 'cd': threads.append(threading.Thread(target=rotator, args=(design, stop, rotlog), daemon=True))
    for t in threads: t.start()
    cons = Consumer(design)
    processed = 0; lat = []; nrows = []; maxsize = [0]
    phase = 'unpinned'; t_start = time.time(); pin = None; t_pin = None; t_rel = None
    checkpoints = [250_000, 500_000, 1_000_000, 2_000_000]; base_processed = None
    after_marks = [30, 60, 90]
    last_size_t = 0
    def snap(label):
        sz, dead, live = size_of(mon, design)
        summarize(label, lat, nrows, {'processed_pinned': processed - (base_processed or processed),
                                      'backlog': produced[0] - processed, 'size_mib': round(sz / 2**20, 1),
                                      'n_dead_tup': dead, 'n_live_tup': live, 't': round(time.time() - t_start, 1)})
        lat.clear(); nrows.clear()
    while True:
        rows, dt = cons.claim()
        cons.complete(rows)
        lat.append(dt); nrows.append(len(rows)); processed += len(rows)
        now = time.time()
        if now - last_size_t > 2:
            last_size_t = now
            sz = size_of(mon, design)[0]
            if phase == 'unpinned': maxsize[0] = max(maxsize[0], sz)
        if phase == 'unpinned' and now - t_start >= args.warm:
            snap('unpinned'); print(json.dumps({'unpinned_max_size_mib': round(maxsize[0] / 2**20, 1)}), flush=True)
            pin = psycopg.connect(DSN); pc = pin.cursor()
            pc.execute("BEGIN ISOLATION LEVEL REPEATABLE READ"); pc.execute("SELECT txid_current()")
            pc.execute("SELECT count(*) FROM public.pin_target")
            phase = 'pinned'; t_pin = now; base_processed = processed
            snap('pinned@0')
        elif phase == 'pinned':
            done = processed - base_processed
            while checkpoints and done >= checkpoints[0]:
                snap(f'pinned@{checkpoints.pop(0)//1000}k')
            if not checkpoints or now - t_pin >= args.max_pinned:
                if checkpoints: snap(f'pinned@{round(now - t_pin)}s')
                pin.rollback(); pin.close(); phase = 'released'; t_rel = now
                print(json.dumps({'pin_held_s': round(now - t_pin, 1), 'rows_while_pinned': done}), flush=True)
        elif phase == 'released':
            if after_marks and now - t_rel >= after_marks[0]:
                snap(f'released+{after_marks.pop(0)}s')
            if not after_marks: break
        if len(rows) < cons.n: time.sleep(0.005)
    stop.set()
    for t in threads: t.join(timeout=5)
    print(json.dumps({'rotations': rotlog[-40:]}), flush=True)

def drain(args):
    design = args.design
    conn = psycopg.connect(DSN); cur = conn.cursor()
    for _ in range(args.rows // 10000):
        cur.execute(INSERT[design], (10000,)); conn.commit()
    cur.execute(f"VACUUM ANALYZE {'a.deliveries' if design=='a' else 'b.deliveries' if design=='b' else design+'.'+('ready' if design=='c' else 'deliveries')}") if False else None
    cons = Consumer(design); t0 = time.perf_counter(); done = 0; lat = []; nrows = []
    while True:
        rows, dt = cons.claim(); cons.complete(rows); lat.append(dt); nrows.append(len(rows))
        if not rows: break
        done += len(rows)
    el = time.perf_counter() - t0
    summarize('drain', lat, nrows, {'rows': done, 'seconds': round(el, 2), 'rows_per_s': round(done / el)})

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('design'); ap.add_argument('mode')
    ap.add_argument('--rate', type=float, default=10000); ap.add_argument('--warm', type=float, default=30)
    ap.add_argument('--max-pinned', type=float, default=240); ap.add_argument('--rows', type=int, default=300000)
    a = ap.parse_args()
    steady(a) if a.mode == 'steady' else drain(a)
