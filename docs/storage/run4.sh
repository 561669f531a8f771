#!/bin/bash
# After run2.sh: re-run (d) (its first run overlapped a functional test), then design (c) with
# the final claim function (v3: exact xip probes, forced ordered plan, jit off): drain + steady.
cd "$(dirname "$0")"
while ! grep -q RUN2DONE run2.err; do sleep 5; done
P="psql -q"
mv results/steady_d.jsonl results/steady_d_contaminated.jsonl; mv results/steady_d.log results/steady_d_contaminated.log
mv results/steady_c.jsonl results/steady_c_v2.jsonl; mv results/steady_c.log results/steady_c_v2.log
mv results/drain_c_fixed.jsonl results/drain_c_v2.jsonl; mv results/drain_c_fixed.log results/drain_c_v2.log
mv results/target_c.jsonl results/target_c_v2.jsonl; mv results/target_c.log results/target_c_v2.log
$P -f sql/schema.sql >/dev/null 2>&1; $P -c CHECKPOINT >/dev/null
echo "=== d rerun $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench.py d steady --rate 10000 --warm 30 --max-pinned 230 > results/steady_d.jsonl 2> results/steady_d.log
cat results/steady_d.log >&2
$P -f sql/schema.sql >/dev/null 2>&1; $P -c CHECKPOINT >/dev/null
echo "=== c v3 drain $(date +%T)" >&2
python3 bench.py c drain --rows 300000 > results/drain_c.jsonl 2> results/drain_c.log; cat results/drain_c.log >&2
$P -f sql/schema.sql >/dev/null 2>&1; $P -c CHECKPOINT >/dev/null
echo "=== c v3 steady $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench.py c steady --rate 10000 --warm 30 --max-pinned 150 > results/steady_c.jsonl 2> results/steady_c.log
cat results/steady_c.log >&2
echo RUN4DONE >&2
