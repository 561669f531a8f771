#!/usr/bin/env python3
"""Runs the shared peer benchmark (../shared/peers/bench.py) with pgbus added as a peer,
without editing the shared harness: it imports bench.py, adds one entry to its PEERS table
(driver: benches/peer_driver.rs, the bench target `peer_driver`, built optimised) and calls its
main(), so pgbus goes through exactly the same steps, settle calls, timers and latency join as
every other peer.

    python3 benches/peers_pgbus.py                    # env as for bench.py; PEERS defaults to pgbus
    python3 benches/peers_pgbus.py --compare DIR      # side-by-side table of DIR/*/results.json
    python3 benches/peers_pgbus.py --build-driver     # build the driver, print its path

Environment: PEERS_DIR (default ../shared/peers next to this crate), PGBUS_PEER_DRIVER (the
driver executable; unset, it is built with `cargo bench --bench peer_driver --no-run`), plus
everything bench.py reads (PGHOST, PGPORT, STEPS, DRAIN_N, DRAIN_RUNS, LAT_N, LAT_RATE,
RESULTS_DIR, EXPECT_DATA_DIR, ...).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The fan-out step's peer: pgbus with every event to FANOUT_SUBS subscriptions.
FANOUT_SUBS = 3
FANOUT = f"pgbus-fanout{FANOUT_SUBS}"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", ROOT.parent / "shared" / "peers")).resolve()


def build_driver() -> str:
    """Builds the bench target peer_driver (bench profile: optimised) and returns the path of
    its executable, which cargo names with a hash (target/release/deps/peer_driver-<hash>)."""
    out = subprocess.run(["cargo", "bench", "--bench", "peer_driver", "--no-run",
                          "--message-format=json-render-diagnostics"],
                         cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "peer_driver" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo built no peer_driver executable")


def pgbus_version() -> str:
    version = "?"
    for line in (ROOT / "Cargo.toml").read_text().splitlines():
        if line.startswith("version"):
            version = line.split('"')[1]
            break
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src",
                                "migrations", "Cargo.toml"],
                               capture_output=True, text=True).stdout.strip()
        version += f" ({rev}{'+changes' if dirty else ''})"
    except (OSError, subprocess.CalledProcessError):
        pass
    return version


def run_bench() -> None:
    driver = os.environ.get("PGBUS_PEER_DRIVER") or build_driver()
    if not Path(driver).exists():
        sys.exit(f"{driver} not found: unset PGBUS_PEER_DRIVER to build it")
    sys.dont_write_bytecode = True  # leave no __pycache__ in the shared directory
    sys.path.insert(0, str(PEERS_DIR))
    import bench  # the shared orchestrator

    bench.PEERS["pgbus"] = {"cmd": [driver], "db": "bench_pgbus"}
    # The fan-out step: its drain rate counts deliveries.
    bench.PEERS[FANOUT] = {"cmd": ["env", f"PGBUS_PEER_SUBS={FANOUT_SUBS}", driver],
                           "db": "bench_pgbus_fanout"}
    original_versions = bench.versions

    def versions() -> dict:
        try:
            v = original_versions()
        except FileNotFoundError:  # the Python peers' venv is not installed
            v = {"postgres": bench.psql("SELECT version()")}
        v["pgbus"] = pgbus_version()
        return v

    bench.versions = versions
    os.environ.setdefault("PEERS", "pgbus")
    bench.main()


def fmt(x, nd=0) -> str:
    return "—" if x is None else f"{x:,.{nd}f}"


def compare(outdir: Path) -> None:
    """Side-by-side table: every peer found in OUTDIR/<peer>/results.json."""
    results: dict = {}
    for f in sorted(outdir.glob("*/results.json")):
        results.update(json.loads(f.read_text()))
    versions: dict = {}
    for f in sorted(outdir.glob("*/versions.json")):
        versions.update(json.loads(f.read_text()))
    if not results:
        sys.exit(f"no results under {outdir}")
    fanout = results.pop(FANOUT, None)
    peers = list(results)
    ref = "graphile-worker" if "graphile-worker" in results else peers[0]

    def drain(r):
        runs = [x["rate"] for x in r.get("drain", [])]
        return (statistics.median(runs), runs) if runs else (None, [])

    header = ["step"] + [f"{p} {versions.get(p, '')}".strip() for p in peers]
    if "pgbus" in results and ref != "pgbus":
        header.append(f"pgbus / {ref}")
    lines = []

    def runs_cell(med, runs):
        return f"{fmt(med)} [{', '.join(fmt(x) for x in runs)}]" if runs else "—"

    def add(name, values, better_high=True, target=""):
        cells = [name] + [v[0] for v in values]
        if "pgbus" in results and ref != "pgbus":
            a = values[peers.index("pgbus")][1]
            b = values[peers.index(ref)][1]
            if a and b:
                r = a / b if better_high else b / a
                cells.append(f"{r:.2f}×" + (f" (target {target})" if target else ""))
            else:
                cells.append("—")
        lines.append(cells)

    vals = []
    for p in peers:
        rate = results[p].get("single", {}).get("rate")
        vals.append((fmt(rate), rate))
    if any(v[1] for v in vals):
        add("A single (jobs/s)", vals)
    vals = []
    for p in peers:
        rate = results[p].get("batch", {}).get("rate")
        vals.append((fmt(rate), rate))
    if any(v[1] for v in vals):
        add("A batch, 1,000/call (jobs/s)", vals, target="≥ 2.0×")
    vals = []
    for p in peers:
        med, runs = drain(results[p])
        vals.append((runs_cell(med, runs), med))
    if any(v[1] for v in vals):
        add("B drain, median (jobs/s) [runs]", vals, target="≥ 2.0×")
    if fanout and fanout.get("drain"):
        # pgbus's fan-out (deliveries/s) against the others' plain drain.
        med, runs = drain(fanout)
        vals = [(runs_cell(med, runs), med) if p == "pgbus"
                else ("", None) for p in peers]
        cells = [f"B' fan-out to {FANOUT_SUBS} subscriptions, median (deliveries/s) [runs]"] + [v[0] for v in vals]
        if "pgbus" in results and ref != "pgbus":
            b = drain(results[ref])[0]
            cells.append(f"{med / b:.2f}× {ref}'s drain (target ≥ 1.5×)" if med and b else "—")
        lines.append(cells)
    # The p99 targets: 1 ms at 200 events/s, 5 ms at 2,000/s (bench.py's LAT_RATE).
    rate = next((results[p]["latency"].get("rate_per_s") for p in peers
                 if results[p].get("latency")), None)
    p99_target = {200: "≤ 1 ms at 200/s", 2000: "≤ 5 ms at 2,000/s"}.get(
        int(rate) if rate else None, "")
    at = f" at {rate:,.0f}/s" if rate else ""
    for key, label, target in [("p50_ms", f"C latency{at} p50 (ms)", ""),
                               ("p90_ms", f"C latency{at} p90 (ms)", ""),
                               ("p99_ms", f"C latency{at} p99 (ms)", p99_target),
                               ("max_ms", f"C latency{at} max (ms)", "")]:
        vals = []
        for p in peers:
            lat = results[p].get("latency")
            v = lat.get(key) if lat else None
            vals.append((fmt(v, 2), v))
        if any(v[1] is not None for v in vals):
            cells = [label] + [v[0] for v in vals]
            if "pgbus" in results and ref != "pgbus":
                cells.append(f"target {target}" if target else "")
            lines.append(cells)
    errors = [f"{p}: {e}" for p in peers for e in results[p].get("errors", [])]
    errors += [f"{FANOUT}: {e}" for e in (fanout or {}).get("errors", [])]

    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in lines]
    text = "\n".join(out) + "\n"
    if errors:
        text += "\nErrors:\n" + "\n".join(f"- {e}" for e in errors) + "\n"
    pg = versions.get("postgres", "")
    text = f"Side by side on one server ({pg.split(' on ')[0]}), method of ../shared/peers/bench.py\n\n" + text
    (outdir / "compare.md").write_text(text)
    if fanout:
        results[FANOUT] = fanout
    (outdir / "compare.json").write_text(json.dumps({"results": results, "versions": versions},
                                                    indent=2))
    print(text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--compare":
        compare(Path(sys.argv[2]))
    elif sys.argv[1:] == ["--build-driver"]:
        print(build_driver())
    elif len(sys.argv) == 1:
        run_bench()
    else:
        sys.exit(__doc__)
