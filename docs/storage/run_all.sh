#!/bin/bash
# Runs the steady pinned benchmark for each design in turn, fresh schema each time.
cd "$(dirname "$0")"
P="psql -q"
mkdir -p results
for d in a b c d; do
  $P -f sql/schema.sql >/dev/null 2>&1
  $P -c "CHECKPOINT" >/dev/null
  echo "=== design $d  $(date +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  python3 bench.py $d steady --rate 10000 --warm 30 --max-pinned 230 > results/steady_$d.jsonl 2> results/steady_$d.log
  tail -n +1 results/steady_$d.log >&2
done
for d in a b c d; do
  $P -f sql/schema.sql >/dev/null 2>&1; $P -c "CHECKPOINT" >/dev/null
  python3 bench.py $d drain --rows 300000 > results/drain_$d.jsonl 2> results/drain_$d.log
  cat results/drain_$d.log >&2
done
echo ALLDONE >&2
