#!/bin/bash
# After run_all.sh: (1) design (c) again with the fixed keyset bound, same conditions as a/b/d;
# (2) the target scenario for the recommended design: 5,000/s, pin held 600 s, 1 % of deliveries
#     failing into the side table (today's deliveries shape, claimed once a second).
cd "$(dirname "$0")"
while ! grep -q ALLDONE results_run.err; do sleep 5; done
mv results/steady_c.jsonl results/steady_c_v1.jsonl; mv results/steady_c.log results/steady_c_v1.log
mv results/drain_c.jsonl results/drain_c_fixed.jsonl 2>/dev/null; mv results/drain_c.log results/drain_c_fixed.log 2>/dev/null
P="psql -q"
$P -f sql/schema.sql >/dev/null 2>&1; $P -c CHECKPOINT >/dev/null
echo "=== c fixed $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench.py c steady --rate 10000 --warm 30 --max-pinned 230 > results/steady_c.jsonl 2> results/steady_c.log
cat results/steady_c.log >&2
$P -f sql/schema.sql >/dev/null 2>&1; $P -f sql/schema_c_side.sql >/dev/null 2>&1; $P -c CHECKPOINT >/dev/null
echo "=== target c 5k/s 600s pin 1% retries $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench2.py c steady --rate 5000 --warm 60 --max-pinned 600 --fail-pct 1 \
   --checkpoints 250000,500000,1000000,2000000,2500000,9000000 > results/target_c.jsonl 2> results/target_c.log
cat results/target_c.log >&2
echo RUN2DONE >&2
