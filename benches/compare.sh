#!/usr/bin/env bash
# pgbus vs graphile-worker, side by side, on one throwaway PostgreSQL with the peers harness's
# settings (fsync=on, synchronous_commit=on, shared_buffers=512MB, max_connections=200), with
# the peers harness's method (../shared/peers/bench.py: fresh database per step, VACUUM
# ANALYZE + CHECKPOINT before each measured phase, drain timer until the handler ran N times
# and no job is left, latency between two processes).
#
#   benches/compare.sh                      # drain, batch, latency, fan-out (about 3-4 minutes)
#   STEPS=drain,single,batch,latency PEERS_OTHER=graphile-worker,pgqueuer benches/compare.sh
#   STEPS=drain,fanout benches/compare.sh   # adds pgbus's fan-out: each event to 3 subscriptions
#
# 1. builds benches/peer_driver.rs (the bench target peer_driver, optimised);
# 2. starts the server (as run-all.sh would: initdb/pg_ctl, as the OS user pgbench_user when
#    run as root) on 127.0.0.1:$PGPORT in $PGDATA_DIR, unless that same cluster already runs;
# 3. runs graphile-worker through ../shared/peers/run-all.sh, which finds the server running,
#    reuses it and installs the npm packages;
# 4. runs pgbus through the same bench.py via benches/peers_pgbus.py (which adds pgbus to
#    bench.py's PEERS table at run time; the shared harness is not edited);
# 5. prints a side-by-side table (also in $OUT/compare.md) and stops the server it started.
#
# Settings: PGPORT (55442), PGDATA_DIR (/tmp/pgbus-compare-pg), STEPS (drain,batch,latency,fanout),
# PEERS_OTHER (graphile-worker), OUT (target/pgbus-compare/<timestamp>), KEEP_CLUSTER=1 to
# keep the data directory, plus bench.py's DRAIN_N, DRAIN_RUNS, BATCH_N, LAT_N, LAT_RATE, ... and
# the driver's PGBUS_BATCH_SIZE, PGBUS_CONCURRENCY, PGBUS_COMPLETE_BATCH, POOL_SIZE (pgbus
# runs with its defaults unless these are set).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS_DIR=$(cd "${PEERS_DIR:-$ROOT/../shared/peers}" && pwd)
export PEERS_DIR
export PEERS_DEPS=${PEERS_DEPS:-/tmp/peers-deps}
export PGHOST=127.0.0.1 PGPORT=${PGPORT:-55442} PGUSER=postgres
export PGDATA_DIR=${PGDATA_DIR:-/tmp/pgbus-compare-pg}
STEPS=${STEPS:-drain,batch,latency,fanout}
# fanout is pgbus's own step (bench.py's drain with PGBUS_PEER_SUBS=3, peer pgbus-fanout3),
# compared with the others' drain; bench.py runs the rest.
FANOUT_STEP=0
case ",$STEPS," in *,fanout,*) FANOUT_STEP=1 ;; esac
STEPS=$(echo "$STEPS" | tr "," "\n" | { grep -vx fanout || true; } | paste -sd, -)
export STEPS
PEERS_OTHER=${PEERS_OTHER:-graphile-worker}
PG_OS_USER=${PG_OS_USER:-pgbench_user}
OUT=${OUT:-$ROOT/target/pgbus-compare/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" "$PEERS_DEPS"
OUT=$(cd "$OUT" && pwd)

echo "== building the pgbus peer driver (cargo bench --bench peer_driver --no-run)" >&2
PGBUS_PEER_DRIVER=$(python3 "$ROOT/benches/peers_pgbus.py" --build-driver)
export PGBUS_PEER_DRIVER

BIN=$(pg_config --bindir 2>/dev/null || true)
[ -x "$BIN/initdb" ] || BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

as_pg() {  # initdb refuses to run as root
  if [ "$(id -u)" = 0 ]; then
    id "$PG_OS_USER" >/dev/null 2>&1 || useradd -m "$PG_OS_USER"
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

started=0
cleanup() {
  if [ "$started" = 1 ]; then
    as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null || true
    [ "${KEEP_CLUSTER:-0}" = 1 ] || rm -rf "$PGDATA_DIR" "$PGDATA_DIR.log"
  fi
}
trap cleanup EXIT

if pg_isready -q -h 127.0.0.1 -p "$PGPORT"; then
  if [ "$(sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null)" != "$PGPORT" ]; then
    echo "port $PGPORT is served by a PostgreSQL that is not $PGDATA_DIR; pick another PGPORT" >&2
    exit 1
  fi
  echo "== reusing our cluster $PGDATA_DIR on 127.0.0.1:$PGPORT" >&2
else
  echo "== starting throwaway cluster in $PGDATA_DIR on port $PGPORT" >&2
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    as_pg "$BIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust >/dev/null
  fi
  as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR.log" -w start -o "-p $PGPORT -k /tmp \
    -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
    -c max_connections=200 -c shared_buffers=512MB" >/dev/null
  started=1
fi
psql -X -qAt -d postgres -c "SELECT version()" >&2
psql -X -qAt -d postgres -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections', 'full_page_writes')" >&2
echo "machine: $(nproc) vCPU, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), \
$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# bench.py's versions() runs the Python peers' interpreter even when only Node peers are
# selected, and run-all.sh creates that venv only for the Python peers: an empty venv is enough.
[ -x "$PEERS_DEPS/venv/bin/python" ] || python3 -m venv "$PEERS_DEPS/venv"

echo "== $PEERS_OTHER via $PEERS_DIR/run-all.sh (steps $STEPS)" >&2
PEERS=$PEERS_OTHER RESULTS_DIR="$OUT/others" "$PEERS_DIR/run-all.sh" >"$OUT/others.log" 2>&1 \
  || { tail -30 "$OUT/others.log" >&2; exit 1; }
tail -n +1 "$OUT/others/results.md" >&2

# One pgbus peer through bench.py on our cluster: run_pgbus PEER [VAR=value ...]
run_pgbus() {
  local peer=$1
  shift
  env EXPECT_DATA_DIR="$(cd "$PGDATA_DIR" && pwd -P)" PEERS="$peer" RESULTS_DIR="$OUT/$peer" "$@" \
    python3 "$ROOT/benches/peers_pgbus.py" 2>"$OUT/$peer.log" >/dev/null \
    || { tail -30 "$OUT/$peer.log" >&2; exit 1; }
}
echo "== pgbus via bench.py + benches/peers_pgbus.py (steps $STEPS)" >&2
run_pgbus pgbus
if [ "$FANOUT_STEP" = 1 ]; then
  echo "== pgbus fan-out: each event to 3 subscriptions (bench.py's drain, deliveries/s)" >&2
  run_pgbus pgbus-fanout3 STEPS=drain
fi

echo >&2
python3 "$ROOT/benches/peers_pgbus.py" --compare "$OUT"
mkdir -p "$ROOT/target/pgbus-compare"
cp "$OUT/compare.json" "$ROOT/target/pgbus-compare/latest.json"
cp "$OUT/compare.md" "$ROOT/target/pgbus-compare/latest.md"
echo "results: $OUT (and target/pgbus-compare/latest.{json,md})" >&2
