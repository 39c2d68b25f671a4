"""Program census: EpisodeOfCare/$census over 500 active patients with 12 weeks of attendance each, against a plain
search of the same size (EpisodeOfCare?status=active&_count=500: the same 500 episodes), on PostgreSQL, in the
same run.

    flock /tmp/bench.lock python bench/census.py                          # 10 s per workload, 2 rounds
    flock /tmp/bench.lock python bench/census.py --seconds 3 --rounds 1   # a smoke check

Seeds one program (America/Chicago) with N patients (default 500), each with an active enrollment, a physician
certification and 12 weeks of attendance: a 3-hour group session on Monday, Wednesday and Thursday and a 50-minute
individual session on Tuesday (48 attendance Encounters each, 24,000 in all; one absence in ten is a cancelled
Encounter), through transaction Bundles. The census is taken on the Sunday of the last week, so this week's hours
sum four Encounters per patient. Workloads, one connection (latency, not throughput):
  plain     EpisodeOfCare?status=active&_count=500          (500 episodes, one page)
  census    EpisodeOfCare/$census?organization=…&date=…     (500 episodes with hours, flags, recertification)
Target (issue 9): census p99 <= 200 ms.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(ROOT), str(BENCH)) if p not in sys.path]

import load  # noqa: E402
import servers  # noqa: E402
from run import database, log  # noqa: E402

C = "https://iop.example.org/fhir"
ORG = "bench-census-org"
FIRST_MONDAY = date(2026, 7, 27)
WEEKS = 12
CENSUS_DATE = FIRST_MONDAY + timedelta(weeks=WEEKS, days=-1)  # the Sunday of the last week
SESSIONS = ((0, "18:00", 180, "76168009"), (1, "10:00", 50, "18512000"), (2, "18:00", 180, "76168009"), (3, "18:00", 180, "76168009"))


def program() -> list[dict]:
    return [
        {"resourceType": "Organization", "id": ORG, "active": True, "name": "Bench census program",
         "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": "America/Chicago"}]},
        {"resourceType": "Practitioner", "id": "bench-census-md", "name": [{"family": "Benchdoctor"}]}]


def patient(n: int) -> list[dict]:
    """Patient n, the enrollment and its certification."""
    pid, eid = f"bench-census-p{n}", f"bench-census-e{n}"
    admitted = FIRST_MONDAY.isoformat()
    episode = {"resourceType": "EpisodeOfCare", "id": eid, "status": "active",
               "extension": [{"url": f"{C}/StructureDefinition/level-of-care", "valueCodeableConcept": {
                   "coding": [{"system": f"{C}/CodeSystem/level-of-care", "code": "asam-2.1"}]}}],
               "patient": {"reference": f"Patient/{pid}"}, "managingOrganization": {"reference": f"Organization/{ORG}"},
               "period": {"start": admitted}, "careManager": {"reference": "Practitioner/bench-census-md"}}
    signed = (FIRST_MONDAY + timedelta(days=n % 60)).isoformat()
    cert = {"resourceType": "DocumentReference", "id": f"bench-census-c{n}", "status": "current", "docStatus": "final",
            "type": {"coding": [{"system": f"{C}/CodeSystem/iop-certification", "code": "certification"}]},
            "subject": {"reference": f"Patient/{pid}"}, "date": f"{signed}T10:00:00-05:00",
            "authenticator": {"reference": "Practitioner/bench-census-md"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "Q2VydGlmaWVk"}}],
            "context": {"encounter": [{"reference": f"EpisodeOfCare/{eid}"}], "period": {"start": signed}}}
    person = {"resourceType": "Patient", "id": pid, "name": [{"family": "Benchpatient", "given": [str(n)]}],
              "birthDate": f"{1960 + n % 50}-0{1 + n % 9}-1{n % 9}"}
    return [person, episode, cert]


def encounters(n: int, rnd: random.Random) -> list[dict]:
    """48 attendance Encounters of patient n (about one in ten an absence)."""
    out = []
    for week in range(WEEKS):
        for weekday, clock, minutes, code in SESSIONS:
            day = FIRST_MONDAY + timedelta(weeks=week, days=weekday)
            start = datetime.fromisoformat(f"{day}T{clock}:00-05:00")
            present = rnd.random() > 0.1
            enc = {"resourceType": "Encounter", "status": "finished" if present else "cancelled",
                   "extension": [{"url": f"{C}/StructureDefinition/attendance-status", "valueCodeableConcept": {
                       "coding": [{"system": f"{C}/CodeSystem/iop-attendance", "code": "attended" if present else "no-show"}]}}],
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                   "type": [{"coding": [{"system": "http://snomed.info/sct", "code": code}]}],
                   "subject": {"reference": f"Patient/bench-census-p{n}"},
                   "episodeOfCare": [{"reference": f"EpisodeOfCare/bench-census-e{n}"}],
                   "period": {"start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat()},
                   "serviceProvider": {"reference": f"Organization/{ORG}"}}
            if present:
                enc["length"] = {"value": minutes, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}
            out.append(enc)
    return out


def post_bundle(base: str, resources: list[dict]) -> None:
    entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"} if "id" in r
                else {"method": "POST", "url": r["resourceType"]}} for r in resources]
    resp = requests.post(f"{base}/fhir", data=json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
                         headers={"Content-Type": "application/fhir+json"}, timeout=300)
    if resp.status_code != 200:
        raise SystemExit(f"seeding failed: {resp.status_code} {resp.text[:500]}")


def seed(base: str, count: int, rnd: random.Random) -> None:
    """The program, then 10 patients (30 resources + 480 Encounters) per transaction."""
    post_bundle(base, program())
    for start in range(0, count, 10):
        batch = range(start, min(count, start + 10))
        post_bundle(base, [r for n in batch for r in patient(n)] + [e for n in batch for e in encounters(n, rnd)])


def workloads() -> dict[str, load.Workload]:
    census = f"/fhir/EpisodeOfCare/$census?organization=Organization/{ORG}&date={CENSUS_DATE}"
    return {"plain": load.Workload("plain", "GET", ("/fhir/EpisodeOfCare?status=active&_count=500",)),
            "census": load.Workload("census", "GET", (census,))}


def smoke(base: str, ws: dict[str, load.Workload], count: int) -> dict[str, int]:
    """Each workload answers, with the same number of episodes."""
    sizes = {}
    for name, w in ws.items():
        r = requests.get(base + w.paths[0], timeout=60)
        if r.status_code != 200:
            raise SystemExit(f"smoke {name} failed: {r.status_code} {r.text[:300]}")
        body = r.json()
        sizes[name] = len(body.get("entry", [])) if name == "plain" else sum(p["name"] == "episode" for p in body["parameter"])
    if set(sizes.values()) != {count}:
        raise SystemExit(f"result sizes differ: {sizes}")
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of each workload (the best of each is kept)")
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--engine", choices=("wrk", "python"))
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--db", default="iop_bench_census")
    args = ap.parse_args()
    rnd = random.Random(9)
    logdir = Path(tempfile.mkdtemp(prefix="iop-bench-census-"))
    runs: dict[str, list[dict]] = {}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database(args.pg, args.db, False))
        server = servers.Gunicorn("wsgi:app", ROOT, {"IOP_DATABASE_URL": url, "IOP_AUTH": "off"}, [], logdir, "/fhir/metadata")
        stack.callback(server.stop)
        began = time.monotonic()
        seed(server.base, args.patients, rnd)
        log(f"seeded {args.patients} patients, {args.patients * WEEKS * len(SESSIONS)} Encounters in {time.monotonic() - began:.0f} s")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        ws = workloads()
        sizes = smoke(server.base, ws, args.patients)
        for round_ in range(args.rounds):
            for name, w in ws.items():
                result = load.run(server.base, w, seconds=args.seconds, connections=args.connections, warmup=args.warmup,
                                  engine_name=args.engine)
                runs.setdefault(name, []).append(result)
                log(f"round {round_ + 1} {name}: {result['rps']:.1f}/s, p50 {result['p50_ms']:.1f} ms, "
                    f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}")
    print(report(runs, sizes, args))


def report(runs: dict[str, list[dict]], sizes: dict[str, int], args) -> str:
    best = {name: min(r, key=lambda x: x["p99_ms"]) for name, r in runs.items()}
    lines = ["", f"census over {args.patients} active patients x {WEEKS} weeks of attendance vs plain EpisodeOfCare search "
                 f"(PostgreSQL, gunicorn -w 2, {args.connections} connection(s))",
             f"{'':8} {'episodes':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"]
    for name, b in best.items():
        lines.append(f"{name:8} {sizes[name]:9d} {b['rps']:8.1f} {b['p50_ms']:8.1f} {b['p99_ms']:8.1f}")
    ok = best["census"]["p99_ms"] <= 200
    lines += [f"census p99 <= 200 ms: {best['census']['p99_ms']:.1f} -> {'PASS' if ok else 'FAIL'}",
              f"census p50 / plain p50: {best['census']['p50_ms'] / best['plain']['p50_ms']:.2f}",
              f"errors: {sum(r['errors'] for rs in runs.values() for r in rs)}"]
    out = BENCH / "results" / f"census-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "argv": sys.argv[1:],
                               "patients": args.patients, "sizes": sizes, "runs": runs}, indent=2))
    lines.append(f"results: {out.relative_to(ROOT)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
