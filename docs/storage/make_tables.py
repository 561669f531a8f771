#!/usr/bin/env python3
"""Turn results/*.jsonl into the markdown tables of storage-design.md."""
import json, glob, sys
names = {'a': '(a) today: UPDATE running + DELETE', 'b': '(b) DELETE-claim in one transaction',
         'c': '(c) append-only log + txid-window cursor, 3-slot TRUNCATE ring',
         'd': '(d) today\'s statements on a 3-slot TRUNCATE ring'}
def load(p):
    return [json.loads(l) for l in open(p) if l.strip()]
for pat in sys.argv[1:]:
    for p in sorted(glob.glob(pat)):
        rows = load(p); stem = p.split('/')[-1].rsplit('.',1)[0]; parts = stem.split('_'); d = parts[1]; variant = ' '.join(parts[2:])
        print(f"\n**{names.get(d, d)}{(' — ' + variant) if variant else ''}** (`{p}`)\n")
        meta = [r for r in rows if 'phase' not in r and 'rotations' not in r]
        print("| phase | rows processed under pin | claims | rows/claim | claim p50 ms | claim p99 ms | max ms | backlog | size MiB | n_dead_tup | extra |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            if 'phase' not in r or r['phase'] == 'pinned@0': continue
            extra = ', '.join(f"{k}={r[k]}" for k in ('side_claim_p50_ms', 'side_claim_p99_ms', 'sweep_max_ms') if k in r)
            if r['phase'] == 'drain':
                print(f"| drain {r['rows']} rows | – | {r['claims']} | {r['rows_per_claim']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | – | – | – | {r['rows_per_s']} rows/s |")
                continue
            print(f"| {r['phase']} | {r['processed_pinned']:,} | {r['claims']} | {r['rows_per_claim']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['backlog']:,} | {r['size_mib']} | {r['n_dead_tup']:,} | {extra} |")
        for m in meta: print(f"\n{json.dumps(m)}")
