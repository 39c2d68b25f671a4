"""Outbound sync through the outbox to the Medplum peer, on PostgreSQL: deliveries/s with 1 and 2 `flask outbox run`
workers, commit-to-delivery latency, and the recovery after an outage, against plain PUTs from one client (same run).

    flock /tmp/bench.lock python bench/exchange.py                  # 1,000 changes, a 20 s outage
    flock /tmp/bench.lock python bench/exchange.py --changes 300 --outage 5   # a smoke check

Workloads (each change is one version of one of `changes/10` CarePlans, 10 versions each: ordered per CarePlan):
  baseline     one requests.Session PUTting the same CarePlan copies to the peer, one after the other
  throughput   N changes queued, then 1 (or 2) worker processes started; rate = deliveries / (last - first delivered_at)
  latency      1 worker running; changes committed one per unit at a steady rate (half the 1-worker rate, or --latency-rate);
               latency = delivered_at - created_at (the unit's time, just before its commit), p50 / p99
  recovery     1 worker running; the peer answers every request 503 (Retry-After: 1) for --outage seconds while N
               changes are queued; time from the peer's recovery until the last is delivered (backoff cap 5 s)
The outage is shorter than the 60 s of the test (tests/test_exchange_recovery.py) to keep the run short; the
recovery time depends on the backoff cap and the drain rate, not on the outage's length once every row is waiting.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import func, select

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(ROOT), str(BENCH)) if p not in sys.path]

import servers  # noqa: E402
from run import database, log  # noqa: E402

from service import create_app, exchange, interactions  # noqa: E402
from service.tables import outbox_message  # noqa: E402

SD = "https://iop.example.org/fhir/StructureDefinition"
OUR_BASE = "https://iop.example.org/bench/fhir"


def endpoint(peer: str) -> dict:
    return {"resourceType": "Endpoint", "id": "bench-partner", "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
            "payloadType": [{"text": "FHIR R4"}], "address": peer, "managingOrganization": {"reference": "Organization/bench-partner"},
            "extension": [{"url": f"{SD}/endpoint-rate-limit", "valueDecimal": 1000},
                          {"url": f"{SD}/endpoint-sync", "extension": [{"url": "direction", "valueCode": "push"},
                                                                       {"url": "type", "valueCode": "CarePlan"}]}]}


def careplan(n: int, title: str) -> dict:
    return {"resourceType": "CarePlan", "id": f"bench-cp-{n}", "status": "active", "intent": "plan", "title": title,
            "subject": {"reference": "Patient/bench-patient"}}


class Bench:
    def __init__(self, url: str, peer: str, logdir: Path):
        self.url, self.peer, self.logdir = url, peer, logdir
        self.app = create_app({"DATABASE_URL": url, "AUTH": "off", "LOG_LEVEL": "WARNING", "BASE_URL": OUR_BASE})
        self.db = self.app.extensions["iop.db"]
        self.run = 0
        interactions.run(self.db, lambda unit: interactions.update(unit, "Endpoint", "bench-partner", endpoint(peer)))
        interactions.run(self.db, lambda unit: interactions.update(unit, "Patient", "bench-patient",
                                                                   {"resourceType": "Patient", "id": "bench-patient"}))

    # ------------------------------------------------------------------ writing changes
    def changes(self, total: int, per_unit: int = 100) -> None:
        """`total` changes: total/10 CarePlans of this run, 10 versions each, committed `per_unit` writes at a time."""
        self.run += 1
        resources = max(1, total // 10)
        for v in range(1, total // resources + 1):
            for start in range(0, resources, per_unit):
                def work(unit, v=v, start=start):
                    for n in range(start, min(resources, start + per_unit)):
                        rid = f"bench-cp-{self.run}-{n}"
                        interactions.update(unit, "CarePlan", rid, dict(careplan(n, f"v{v}"), id=rid))
                interactions.run(self.db, work)

    def delivered(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).where(outbox_message.c.status == "delivered")).scalar_one()

    def pending(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).where(outbox_message.c.status == "pending")).scalar_one()

    def wait_drained(self, timeout: float) -> float:
        start = time.monotonic()
        while self.pending() and time.monotonic() - start < timeout:
            time.sleep(0.05)
        if self.pending():
            raise RuntimeError(f"{self.pending()} messages still pending after {timeout} s")
        return time.monotonic() - start

    def delivered_span(self, since_pk: int) -> tuple[int, float]:
        M = outbox_message
        with self.db.read() as conn:
            n, first, last = conn.execute(select(func.count(), func.min(M.c.delivered_at), func.max(M.c.delivered_at))
                                          .where(M.c.pk > since_pk, M.c.status == "delivered")).one()
        return n, (last - first).total_seconds()

    def last_pk(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.coalesce(func.max(outbox_message.c.pk), 0))).scalar_one()

    # ------------------------------------------------------------------ workers
    def workers(self, n: int, **settings) -> list[subprocess.Popen]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOP_")}
        env.update({"IOP_DATABASE_URL": self.url, "IOP_AUTH": "off", "IOP_LOG_LEVEL": "WARNING", "IOP_BASE_URL": OUR_BASE,
                    "IOP_OUTBOX_POLL_SECONDS": "0.05", "IOP_OUTBOX_BATCH": "200"})
        env.update({f"IOP_{k}": str(v) for k, v in settings.items()})
        flask = Path(sys.executable).parent / "flask"
        with open(self.logdir / "workers.log", "a") as err:
            return [subprocess.Popen([str(flask), "--app", "wsgi", "outbox", "run"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                     stderr=err) for _ in range(n)]

    @staticmethod
    def stop(procs: list[subprocess.Popen]) -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


# ------------------------------------------------------------------------------- workloads
def baseline(peer: str, total: int) -> float:
    """Plain PUTs of the same copies from one client: requests/s."""
    resources = max(1, total // 10)
    bodies = [exchange.copy(dict(careplan(n, f"v{v}"), id=f"base-cp-{n}", meta={"versionId": str(v)}), OUR_BASE)
              for v in range(1, 11) for n in range(resources)]
    with requests.Session() as s:
        start = time.perf_counter()
        for body in bodies:
            r = s.put(f"{peer}/CarePlan/{body['id']}", data=json.dumps(body), headers={"Content-Type": "application/fhir+json"}, timeout=30)
            r.raise_for_status()
        return len(bodies) / (time.perf_counter() - start)


def throughput(b: Bench, total: int, workers: int) -> float:
    since = b.last_pk()
    b.changes(total)
    procs = b.workers(workers)
    try:
        b.wait_drained(600)
    finally:
        b.stop(procs)
    n, span = b.delivered_span(since)
    return (n - 1) / span


def latency(b: Bench, rate: float, seconds: float) -> tuple[float, float, int]:
    procs = b.workers(1)
    try:
        b.run += 1
        interactions.run(b.db, lambda unit: interactions.update(unit, "CarePlan", f"bench-lat-{b.run}-probe",
                                                                dict(careplan(0, "probe"), id=f"bench-lat-{b.run}-probe")))
        b.wait_drained(120)  # the worker is up and has delivered once
        since = b.last_pk()
        count = int(rate * seconds)
        start = time.monotonic()
        for i in range(count):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            interactions.run(b.db, lambda unit, i=i: interactions.update(unit, "CarePlan", f"bench-lat-{b.run}-{i}",
                                                                          dict(careplan(i, "v1"), id=f"bench-lat-{b.run}-{i}")))
        b.wait_drained(120)
    finally:
        b.stop(procs)
    M = outbox_message
    with b.db.read() as conn:
        rows = conn.execute(select(M.c.created_at, M.c.delivered_at).where(M.c.pk > since, M.c.status == "delivered")).all()
    ms = sorted((d - c).total_seconds() * 1000 for c, d in rows)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))], len(ms)


def recovery(b: Bench, peer: str, total: int, outage: float) -> tuple[float, int]:
    root = peer.rsplit("/fhir", 1)[0]
    requests.post(f"{root}/_peer/faults", json={"status": 503, "count": 10_000_000, "retryAfter": "1"}, timeout=5).raise_for_status()
    down = time.monotonic()
    procs = b.workers(1, OUTBOX_BACKOFF_SECONDS=0.5, OUTBOX_MAX_BACKOFF_SECONDS=5, OUTBOX_MAX_ATTEMPTS=100)
    try:
        b.changes(total)
        time.sleep(max(0.0, outage - (time.monotonic() - down)))
        queued = b.pending()
        requests.delete(f"{root}/_peer/faults", timeout=5).raise_for_status()
        return b.wait_drained(600), queued
    finally:
        b.stop(procs)


# ------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--outage", type=float, default=20, help="seconds the peer answers 503 (the test uses 60)")
    ap.add_argument("--latency-seconds", type=float, default=15)
    ap.add_argument("--latency-rate", type=float, default=None,
                    help="changes/s committed in the latency workload (default: half the 1-worker rate); fix it to compare runs")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--db", default="iop_bench_exchange")
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--peers", default=os.environ.get("FHIR_PEERS_DIR") or str(ROOT / ".peers"))
    args = ap.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="bench-exchange-"))
    seed = logdir / "seed.json"
    seed.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}))
    log(f"load average at start {os.getloadavg()[0]:.2f} (2 cores shared with other work); logs in {logdir}")
    peer = servers.Peer(Path(args.peers), seed, logdir)
    base = peer.base + peer.prefix
    try:
        with database(args.pg, args.db, args.keep_db) as url:
            b = Bench(url, base, logdir)
            plain = baseline(base, args.changes)
            log(f"baseline: plain PUTs  {plain:8.1f} /s (one client, one after the other)")
            one = throughput(b, args.changes, 1)
            log(f"outbox, 1 worker      {one:8.1f} deliveries/s  ({one / plain:.2f} x baseline)")
            two = throughput(b, args.changes, 2)
            log(f"outbox, 2 workers     {two:8.1f} deliveries/s  ({two / plain:.2f} x baseline, {two / one:.2f} x 1 worker)")
            rate = args.latency_rate or max(1.0, one / 2)
            p50, p99, n = latency(b, rate, args.latency_seconds)
            log(f"commit-to-delivery, 1 worker at {rate:.0f} changes/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms ({n} changes)")
            took, queued = recovery(b, base, args.changes, args.outage)
            log(f"recovery after a {args.outage:g} s outage: {queued} queued, all delivered {took:.1f} s after the peer came back "
                f"(drain at 1 worker's rate: {queued / one:.1f} s)")
            log(f"load average at end {os.getloadavg()[0]:.2f}")
            b.db.dispose()
    finally:
        peer.stop()


if __name__ == "__main__":
    main()
