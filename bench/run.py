"""The benchmark, in one command from the repository root:

    python bench/run.py                        # scales 10,000 / 100,000 / 1,000,000 (~25 min, a third of it seeding)
    python bench/run.py --quick                # small scales, short runs (~2 min): a smoke check
    python bench/run.py --scales 10000,100000 --seconds 20 --connections 8 --threads 4   # gthread workers

What it does, all on this machine:
1. Creates a PostgreSQL database (dropped at the end unless --keep-db) and starts, like an operator,
   `IOP_DATABASE_URL=… IOP_AUTH=off gunicorn -w 2 wsgi:app` (sync workers by default; --threads N for
   gthread; the app migrates at start) and the bare baseline (bench/baseline.py) with the same settings.
   Sync workers close the connection after each response, so clients reconnect for every request.
2. Medplum memory peer, for reference: started with the first scale's Patients (at most --peer-max),
   then the same four workloads.
3. For each scale: tops the database up to that many ~1 KB Patients with the in-process bulk seeder
   (bench/seed.py: the service's own write path, 1000 per transaction), then measures baseline
   reads, our reads, identifier searches, creates and 10-entry transactions (bench/load.py: wrk with
   bench/wrk/workload.lua, or a multi-process Python generator when wrk is absent).
4. Peak RSS of a gunicorn worker during a 1,000-entry transaction (VmRSS sampled every 2 ms, minus idle).
5. Prints the figures, ratios and PASS/FAIL per target; writes everything to bench/results/*.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(ROOT), str(BENCH)) if p not in sys.path]

import load  # noqa: E402
import payloads  # noqa: E402
import psycopg  # noqa: E402
import seed  # noqa: E402
import servers  # noqa: E402

# Medplum's server on PostgreSQL measured here with one client (given in the issue), for reference.
MEDPLUM_PG = {"create": 311.0, "read": 862.0, "search": 652.0, "transaction": 44.0}
WORKLOADS = ("read", "search", "create", "transaction")
SAMPLE = 5000  # read/search targets drawn per scale


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------- measuring
def workloads(prefix: str, scale: int, rnd: random.Random) -> dict[str, load.Workload]:
    """The four workloads against a FHIR base path, read/search targets drawn from seed Patients 0..scale-1."""
    picks = rnd.sample(range(scale), min(scale, SAMPLE))
    reads = tuple(f"{prefix}/Patient/{payloads.patient_id(i)}" for i in picks)
    searches = tuple(f"{prefix}/Patient?" + urlencode({"identifier": f"{payloads.SEED_SYSTEM}|{payloads.identifier_value(i)}"})
                     for i in picks)
    return {"read": load.Workload("read", "GET", reads),
            "search": load.Workload("search", "GET", searches),
            "create": load.Workload("create", "POST", (f"{prefix}/Patient",), payloads.create_template()),
            "transaction": load.Workload("transaction", "POST", (prefix or "/",), payloads.transaction_template(10))}


def smoke(base: str, ws: dict[str, load.Workload]) -> None:
    """One request per workload, checked, before anything is timed."""
    def send(w: load.Workload) -> tuple[int, dict]:
        body = w.body.replace(payloads.TOKEN, f"smoke{time.time()}") if w.body is not None else None
        return servers.request(base, w.method, w.paths[0], body)
    status, doc = send(ws["read"])
    assert status == 200 and doc.get("resourceType") == "Patient", (status, doc)
    status, doc = send(ws["search"])
    assert status == 200 and len(doc.get("entry", [])) == 1, (status, str(doc)[:300])
    status, doc = send(ws["create"])
    assert status == 201 and doc.get("resourceType") == "Patient", (status, str(doc)[:300])
    status, doc = send(ws["transaction"])
    assert status == 200 and len(doc.get("entry", [])) == 10, (status, str(doc)[:300])


def wait_quiet(dbname: str, patience: float, threshold: float = 0.25) -> None:
    """Wait (at most `patience` seconds) until processes outside the benchmark use less than `threshold` cores."""
    deadline = time.time() + patience
    while time.time() < deadline:
        used = servers.foreign_cores(dbname, 2)
        if used < threshold:
            return
        log(f"  waiting for a quieter machine: {used:.2f} cores used outside the benchmark")
    log("  measuring anyway (see foreign_cpu_cores in the results)")


def measure(base: str, ws: dict[str, load.Workload], names, args) -> dict[str, dict]:
    """Run the named workloads one after the other (after waiting for a quiet machine), logging each."""
    out = {}
    for name in names:
        if args.quiet_wait:
            wait_quiet(args.db, args.quiet_wait)
        start = servers.cpu_ticks(args.db)
        out[name] = r = load.run(base, ws[name], seconds=args.seconds, connections=args.connections, warmup=args.warmup,
                                 engine_name=args.engine)
        r["foreign_cpu_cores"] = round(servers.foreign_since(start, args.db), 2)
        log(f"  {name:<12} {r['rps']:>8.1f}/s  p50 {r['p50_ms']:>7.2f} ms  p99 {r['p99_ms']:>7.2f} ms  errors {r['errors']}"
            f"  (CPU used outside the benchmark: {r['foreign_cpu_cores']:.2f} cores)")
    return out


def big_transaction_rss(server: servers.Gunicorn, entries: int, repeats: int) -> dict:
    """Peak minus idle VmRSS of the worker that served each `entries`-entry transaction (sampled every 2 ms)."""
    runs = []
    for k in range(repeats):
        body = payloads.compact(payloads.transaction(entries, value=f"rss-{k}-{time.time()}"))
        pids = server.workers()
        idle = {p: servers.rss_kb(p) for p in pids}
        peak, done = dict(idle), threading.Event()
        sampler = threading.Thread(target=servers.peak_rss, args=(pids, done, peak))
        sampler.start()
        t0 = time.perf_counter()
        status, doc = servers.request(server.base, "POST", "/fhir", body)
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        assert status == 200 and len(doc.get("entry", [])) == entries, (status, str(doc)[:300])
        pid = max(pids, key=lambda p: peak[p] - idle[p])
        runs.append({"seconds": round(seconds, 2), "worker": pid, "idle_mb": round(idle[pid] / 1024, 1),
                     "peak_mb": round(peak[pid] / 1024, 1), "delta_mb": round((peak[pid] - idle[pid]) / 1024, 1)})
        log(f"  {entries}-entry transaction #{k + 1}: {seconds:.2f} s, worker RSS {runs[-1]['idle_mb']} → "
            f"{runs[-1]['peak_mb']} MB (+{runs[-1]['delta_mb']} MB)")
    return {"entries": entries, "bundle_bytes": len(body), "runs": runs, "max_delta_mb": max(r["delta_mb"] for r in runs)}


# ------------------------------------------------------------------------------- database
@contextlib.contextmanager
def database(admin_url: str, name: str, keep: bool):
    """A fresh database `name` (an existing one is reused when keep is set), dropped afterwards unless keep."""
    with psycopg.connect(admin_url + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and not keep:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not keep:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url}/{name}"
    finally:
        if not keep:
            with psycopg.connect(admin_url + "/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(url: str, args, worker_args: list[str]) -> dict:
    """What the figures depend on: code version, machine, PostgreSQL settings, server and load commands."""
    names = ["shared_buffers", "synchronous_commit", "max_connections", "effective_cache_size", "work_mem"]
    with psycopg.connect(url) as conn:
        pg = dict(conn.execute("SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name = ANY(%s)", (names,)).fetchall())
        pg["version"] = conn.execute("SHOW server_version").fetchall()[0][0]

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit, dirty = git("rev-parse", "--short", "HEAD"), bool(git("status", "--porcelain", "--", "service", "wsgi.py"))
    return {"when": datetime.now(UTC).isoformat(timespec="seconds"), "git": commit + ("+dirty" if dirty else ""),
            "cpus": os.cpu_count(), "python": sys.version.split()[0], "postgresql": pg,
            "server": "IOP_DATABASE_URL=… IOP_AUTH=off " + " ".join(["gunicorn", "-w", "2", *worker_args, "wsgi:app"]),
            "baseline": " ".join(["gunicorn", "-w", "2", *worker_args, "baseline:app"]),
            "load": {"engine": load.engine(args.engine), "connections": args.connections, "seconds": args.seconds, "warmup": args.warmup},
            "argv": sys.argv[1:]}


# ------------------------------------------------------------------------------- report
def targets(results: dict) -> list[dict]:
    """The issue's targets, checked at every scale (search p99: at the largest scale, meant to be 1,000,000)."""
    rows = []
    scales = results["scales"]

    def add(name: str, unit: str, limit: float, values: dict, higher: bool) -> None:
        ok = {k: (v >= limit if higher else v <= limit) for k, v in values.items()}
        rows.append({"target": name, "limit": limit, "unit": unit, "values": values, "pass": ok, "all_pass": all(ok.values())})
    add("reads ≥ 60 % of bare baseline", "%", 60, {s: round(100 * d["ours"]["read"]["rps"] / d["baseline"]["read"]["rps"], 1)
                                                 for s, d in scales.items()}, True)
    add("creates ≥ 400/s", "/s", 400, {s: d["ours"]["create"]["rps"] for s, d in scales.items()}, True)
    add("10-entry transactions ≥ 60/s", "/s", 60, {s: d["ours"]["transaction"]["rps"] for s, d in scales.items()}, True)
    largest = max(scales, key=int)
    add("identifier search p99 ≤ 20 ms at 1,000,000", "ms", 20, {largest: scales[largest]["ours"]["search"]["p99_ms"]}, False)
    if results.get("rss"):
        add("1,000-entry transaction ≤ 100 MB above idle RSS", "MB", 100, {"-": results["rss"]["max_delta_mb"]}, False)
    return rows


def report(results: dict) -> str:
    """The results as text: figures per scale, ratios, seeding, RSS, targets."""
    meta, scales, peer = results["meta"], sorted(results["scales"], key=int), results.get("peer")
    w, label = 25, 34

    def cell(r: dict) -> str:
        flags = ("!" if r["errors"] else "") + ("~" if r.get("foreign_cpu_cores", 0) > 0.25 else "")
        return f"{r['rps']:>6.0f}/s {r['p50_ms']:>6.1f} {r['p99_ms']:>6.1f}{flags:<2}"

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "-"

    ours = lambda s, name: results["scales"][s]["ours"][name]  # noqa: E731
    head = f"{'':<{label}}" + "".join(f"{format(int(s), ',') + ' Patients':>{w}}" for s in scales)
    head += f"{'Medplum memory peer':>{w}}" if peer else ""
    lo = meta["load"]
    lines = ["", f"Our service: {meta['server']}   (git {meta['git']}; PostgreSQL {meta['postgresql']['version']})",
             f"Bare baseline: {meta['baseline']};  load: {lo['engine']}, {lo['connections']} connections, "
             f"{lo['seconds']:g} s per workload after {lo['warmup']:g} s warm-up",
             "", "Requests/s, p50 ms, p99 ms   (! = errors; ~ = other processes used > 0.25 cores meanwhile)", head]
    if peer:
        lines.append(f"{'':<{label}}" + f"{'':>{w}}" * len(scales) + f"{'(' + format(peer['scale'], ',') + ' Patients)':>{w}}")
    rows = [("read, bare baseline", "baseline", "read"), ("read", "ours", "read"), ("identifier search", "ours", "search"),
            ("create (~1 KB Patient)", "ours", "create"), ("transaction (10 entries)", "ours", "transaction")]
    for text, who, name in rows:
        line = f"{text:<{label}}" + "".join(f"{cell(results['scales'][s][who][name]):>{w}}" for s in scales)
        lines.append(line + (f"{cell(peer['results'][name]) if who == 'ours' else '':>{w}}" if peer else ""))
    lines += ["", f"{'Ratios of requests/s':<{label}}" + "".join(f"{format(int(s), ','):>{w}}" for s in scales)]
    lines.append(f"{'read ÷ bare baseline':<{label}}" + "".join(
        f"{ratio(ours(s, 'read')['rps'], results['scales'][s]['baseline']['read']['rps']):>{w}}" for s in scales))
    for name in WORKLOADS:
        if peer:
            lines.append(f"{name + ' ÷ Medplum memory peer':<{label}}" + "".join(
                f"{ratio(ours(s, name)['rps'], peer['results'][name]['rps']):>{w}}" for s in scales))
        lines.append(f"{name + f' ÷ Medplum PG ({MEDPLUM_PG[name]:g}/s)':<{label}}" + "".join(
            f"{ratio(ours(s, name)['rps'], MEDPLUM_PG[name]):>{w}}" for s in scales))
    lines += ["", "Medplum's server on PostgreSQL, measured here with one client (reference): "
              + ", ".join(f"{v:g} {k}s/s" if k != "search" else f"{v:g} searches/s" for k, v in MEDPLUM_PG.items()),
              "", "Seeding (1000 Patients per transaction; write = the service's write path in-process, copy = the same rows by COPY)"]
    for s in scales:
        sd = results["scales"][s]["seeding"]
        rate = f"{sd['per_second']:,.0f}/s" if sd["per_second"] else "-"
        lines.append(f"  to {int(s):>9,}: {sd['seeded']:>9,} new by {sd['method']:<5} in {sd['seconds']:>6.1f} s = {rate:>8} "
                     f"({sd['processes']} processes); VACUUM ANALYZE + CHECKPOINT {sd['vacuum_analyze_seconds']} s; "
                     f"rows in resource when measured: {results['scales'][s]['stored']:,}")
    if results.get("rss"):
        rss = results["rss"]
        lines += ["", f"Worker RSS during a {rss['entries']}-entry transaction ({rss['bundle_bytes'] / 1e6:.1f} MB Bundle): " + "; ".join(
            f"{r['seconds']} s, +{r['delta_mb']} MB over idle {r['idle_mb']} MB" for r in rss["runs"])]
    lines += ["", "Targets"]
    for t in results["targets"]:
        vals = "  ".join(f"{format(int(k), ',') + ': ' if k.isdigit() else ''}{v}{t['unit']} {'PASS' if t['pass'][k] else 'FAIL'}"
                         for k, v in t["values"].items())
        lines.append(f"  {'PASS' if t['all_pass'] else 'FAIL'}  {t['target']:<50} {vals}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="scales 1000,5000, 4 s per workload: a ~2 minute smoke check")
    ap.add_argument("--scales", help="comma-separated seed Patient counts (default 10000,100000,1000000)")
    ap.add_argument("--seconds", type=float, help="measured seconds per workload (default 15; quick 4)")
    ap.add_argument("--warmup", type=float, help="unmeasured seconds before each workload (default 3; quick 1)")
    ap.add_argument("--connections", type=int, default=4, help="concurrent client connections (default 4: two per worker)")
    ap.add_argument("--threads", type=int, default=0,
                    help="gunicorn gthread threads per worker; 0 = the default sync workers (default 0: on 2 cores gthread "
                         "gave no more throughput and 0.1-2.7 s stalls)")
    ap.add_argument("--engine", choices=("wrk", "python"), help="load generator (default: wrk when installed, else Python)")
    ap.add_argument("--seed-processes", type=int, default=2)
    ap.add_argument("--seed-method", choices=("write", "copy"), default="write",
                    help="write (default): the service's write path in-process; copy: the same rows by COPY, faster, unvalidated")
    ap.add_argument("--rss-entries", type=int, default=1000)
    ap.add_argument("--peer-max", type=int, default=10000, help="Patients loaded into the Medplum memory peer (0 = skip the peer)")
    ap.add_argument("--peer-modules", default=os.environ.get("FHIR_PEERS_DIR", "/tmp/peers"))
    ap.add_argument("--quiet-wait", type=float, help="on a shared machine, wait up to this many seconds before each workload "
                    "until other processes use < 0.25 cores (default 120; quick 10; 0 = never wait)")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server URL (no database)")
    ap.add_argument("--db", default="iop_bench", help="database name (created, and dropped unless --keep-db)")
    ap.add_argument("--keep-db", action="store_true", help="keep the database (and reuse it if it exists: seeding tops up)")
    args = ap.parse_args()
    scales = [int(s) for s in args.scales.split(",")] if args.scales else ([1000, 5000] if args.quick else [10_000, 100_000, 1_000_000])
    args.seconds = args.seconds or (4 if args.quick else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (10 if args.quick else 120)
    worker_args = ["--worker-class", "gthread", "--threads", str(args.threads)] if args.threads else []
    rnd = random.Random(20261124)
    logdir = Path(tempfile.mkdtemp(prefix="iop-bench-"))
    log(f"load generator: {load.engine(args.engine)}, {args.connections} connections; server logs in {logdir}")

    out = BENCH / "results" / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(exist_ok=True)
    results: dict = {"scales": {}}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database(args.pg, args.db, args.keep_db))
        results["meta"] = environment(url, args, worker_args)
        if args.peer_max:
            n = min(scales[0], args.peer_max)
            seed_file = logdir / "peer-seed.json"
            seed_file.write_text(payloads.compact(payloads.seed_bundle(0, n)))
            log(f"Medplum memory peer with {n:,} Patients")
            try:
                peer = servers.Peer(Path(args.peer_modules), seed_file, logdir)
            except (RuntimeError, OSError) as err:
                log(f"  skipping the peer: {err}")
            else:
                try:
                    ws = workloads(peer.prefix, n, rnd)
                    smoke(peer.base, ws)
                    results["peer"] = {"scale": n, "results": measure(peer.base, ws, WORKLOADS, args)}
                finally:
                    peer.stop()
        env = {"IOP_DATABASE_URL": url, "IOP_AUTH": "off"}
        ours = servers.Gunicorn("wsgi:app", ROOT, env, worker_args, logdir, "/fhir/metadata")
        stack.callback(ours.stop)
        bare = servers.Gunicorn("baseline:app", BENCH, {"BASELINE_DATABASE_URL": url}, worker_args, logdir, "/fhir/Patient/none")
        stack.callback(bare.stop)
        log(f"serving: {results['meta']['server']} on {ours.base}; baseline on {bare.base}")
        for scale in scales:
            log(f"seeding to {scale:,} Patients")
            seeding = seed.seed(url, scale, processes=args.seed_processes, method=args.seed_method, progress=log)
            log(f"  {seeding}")
            ws = workloads("/fhir", scale, rnd)
            with psycopg.connect(url) as conn:
                stored = conn.execute("SELECT count(*) FROM resource").fetchall()[0][0]
            smoke(ours.base, ws)
            log(f"scale {scale:,} ({stored:,} resources stored): baseline, then ours")
            base_read = measure(bare.base, ws, ["read"], args)
            results["scales"][str(scale)] = {"seeding": seeding, "stored": stored, "baseline": base_read,
                                             "ours": measure(ours.base, ws, WORKLOADS, args)}
            out.write_text(json.dumps(results, indent=2, ensure_ascii=False))  # partial results survive a later failure
        if args.rss_entries:
            log(f"peak worker RSS during {args.rss_entries}-entry transactions")
            results["rss"] = big_transaction_rss(ours, args.rss_entries, 3)
    results["targets"] = targets(results)
    results["report"] = report(results)
    print(results["report"])
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    log(f"results written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
