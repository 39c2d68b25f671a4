"""Reads and identifier searches against the bare baseline on a shared machine: requests/s AND CPU per request.

    python bench/paired.py [--rounds 5] [--db iop_paired]

run.py's throughput figures move with whatever else the machine runs; CPU time per request does much less. This
serves the code of the current checkout (gunicorn -w 2, as run.py) and the baseline on one database of 5,000 seed
Patients (copied in), then for each round measures the baseline's reads, our reads and our identifier searches
(wrk, 4 s each, 4 connections), and for each the CPU the serving processes used per request: the gunicorn workers
plus this database's PostgreSQL backends (read from /proc). Prints each round, the medians and the read ÷ baseline
ratio both ways. Run it under `flock /tmp/bench.lock` like every benchmark here.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import load  # noqa: E402
import seed  # noqa: E402
import servers  # noqa: E402
from run import database, workloads  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
SCALE = 5000


def ticks(pids: set[int]) -> int:
    """CPU ticks (user + system) the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total


def backends(dbname: str) -> set[int]:
    """PostgreSQL backends connected to `dbname`."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres: ") and f" {dbname} " in cmd:
                out.add(int(d.name))
    return out


def measure(server: servers.Gunicorn, w: load.Workload, dbname: str) -> tuple[dict, float]:
    """One wrk run and the serving processes' CPU milliseconds per request over it (warm-up included on both sides)."""
    before = set(server.workers()) | backends(dbname)
    started, used = time.perf_counter(), ticks(before)
    result = load.run(server.base, w, seconds=4, connections=4, warmup=1)
    after = before | set(server.workers()) | backends(dbname)
    wall = time.perf_counter() - started
    return result, (ticks(after) - used) / HZ * 1000 / max(1.0, result["rps"] * wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--db", default="iop_paired")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    args = ap.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="iop-paired-"))
    with database(args.pg, args.db, False) as url:
        ours = servers.Gunicorn("wsgi:app", BENCH.parent, {"IOP_DATABASE_URL": url, "IOP_AUTH": "off"}, [], logdir, "/fhir/metadata")
        bare = servers.Gunicorn("baseline:app", BENCH, {"BASELINE_DATABASE_URL": url}, [], logdir, "/fhir/Patient/none")
        try:
            print(seed.seed(url, SCALE, method="copy"), flush=True)
            ws = workloads("/fhir", SCALE, random.Random(20261124))
            rows: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "read": [], "search": []}
            for i in range(args.rounds):
                for name, server, w in (("baseline", bare, ws["read"]), ("read", ours, ws["read"]), ("search", ours, ws["search"])):
                    r, cpu = measure(server, w, args.db)
                    rows[name].append((r["rps"], r["p99_ms"], cpu))
                    print(f"round {i} {name:<8} {r['rps']:6.0f}/s  p99 {r['p99_ms']:6.1f} ms  CPU {cpu:.3f} ms/request", flush=True)
        finally:
            ours.stop()
            bare.stop()
    report(rows)


def report(rows: dict[str, list[tuple[float, float, float]]]) -> None:
    for name, v in rows.items():
        print(f"{name:<8} median {statistics.median(x[0] for x in v):6.0f}/s (best {max(x[0] for x in v):.0f}), p99 median "
              f"{statistics.median(x[1] for x in v):.1f} ms (best {min(x[1] for x in v):.1f}), CPU/request median "
              f"{statistics.median(x[2] for x in v):.3f} ms (min {min(x[2] for x in v):.3f})")
    ratios = [r[0] / b[0] for r, b in zip(rows["read"], rows["baseline"], strict=True)]
    by_cpu = statistics.median(x[2] for x in rows["baseline"]) / statistics.median(x[2] for x in rows["read"])
    print(f"read ÷ baseline, requests/s per round: {', '.join(f'{x:.0%}' for x in ratios)} (median {statistics.median(ratios):.0%}); "
          f"by CPU per request: {by_cpu:.0%}")


if __name__ == "__main__":
    main()
