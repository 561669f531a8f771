#!/bin/bash
# Re-run design (d): its first run overlapped a functional test of bench2.py (contaminated).
cd "$(dirname "$0")"
while ! grep -q RUN2DONE run2.err; do sleep 5; done
mv results/steady_d.jsonl results/steady_d_contaminated.jsonl; mv results/steady_d.log results/steady_d_contaminated.log
P="psql -q"
$P -f sql/schema.sql >/dev/null 2>&1; $P -c CHECKPOINT >/dev/null
echo "=== d rerun $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench.py d steady --rate 10000 --warm 30 --max-pinned 230 > results/steady_d.jsonl 2> results/steady_d.log
cat results/steady_d.log >&2
echo RUN3DONE >&2
