"""Attendance for a 12-patient session through Appointment/$record-attendance, against a plain transaction Bundle that
creates the same 13 Encounters (session + 12 patients, urn:uuid partOf), on PostgreSQL, in the same run.

    flock /tmp/bench.lock python bench/attendance.py                  # 10 s per workload, 2 rounds, 4 connections
    flock /tmp/bench.lock python bench/attendance.py --seconds 3 --rounds 1 --groups 6   # a smoke check

Seeds the Riverside program (examples/), G groups of 12 patients with active enrollments and a Mon/Wed/Thu 18:00-21:00
schedule, the past 25 weeks of sessions of each group through Group/$schedule-sessions, and the attendance of the
first 100 sessions (warm-up, so that the tables hold attendance when analysed). Each request records one
session not recorded before (9 attended, 1 late, 1 left early, 1 excused), so every request does the whole work:
checks (roster, enrollments, overlaps) and 13 Encounters plus the Appointment in one transaction. The plain workload
POSTs the same 13 Encounters as a transaction Bundle (no checks, no Appointment update). Closed-loop clients (threads
with one keep-alive connection each); sessions/s = requests completed / seconds; "others" = the cores other processes
used meanwhile (the machine may be shared); "CPU ms" = CPU time of the server's workers and our database's backends per
request, and "2 cores/CPU" the rate two dedicated cores would sustain at that cost. Target (issue 9): >= 50 sessions/s.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(ROOT), str(BENCH)) if p not in sys.path]

import load  # noqa: E402
import servers  # noqa: E402
from run import database, log  # noqa: E402

SD = "https://iop.example.org/fhir/StructureDefinition"
EXAMPLES = ROOT / "examples"
SETUP = ("Organization-iop-org-riverside", "HealthcareService-iop-hs-adult-evening", "Location-iop-loc-riverside-main",
         "Practitioner-iop-pract-therapist")


# ------------------------------------------------------------------------------- seeding
def call(base: str, method: str, path: str, body: object | None = None) -> dict:
    status, out = servers.request(base, method, path, json.dumps(body) if body is not None else None)
    if status >= 300:
        raise SystemExit(f"{method} {path} failed: {status} {json.dumps(out)[:500]}")
    return out


def seed(base: str, groups: int) -> list[dict]:
    """The program, the groups with their patients and enrollments, and their past sessions' Appointments."""
    for name in SETUP:
        body = json.loads((EXAMPLES / f"{name}.json").read_text())
        call(base, "PUT", f"/fhir/{body['resourceType']}/{body['id']}", body)
    first = date.today() - timedelta(weeks=26)
    first -= timedelta(days=first.weekday())
    appts = []
    for g in range(groups):
        call(base, "POST", "/fhir", group_bundle(g))
        params = {"resourceType": "Parameters", "parameter": [{"name": "start", "valueDate": first.isoformat()},
                                                               {"name": "weeks", "valueInteger": 25}]}
        made = call(base, "POST", f"/fhir/Group/bench-g{g}/$schedule-sessions", params)
        appts += [e["resource"] for e in made["entry"]]
    return appts


def group_bundle(g: int) -> dict:
    resources = []
    for p in range(12):
        pid = f"bench-g{g}-p{p}"
        resources.append({"resourceType": "Patient", "id": pid, "name": [{"family": "Benchpatient", "given": [pid]}],
                          "gender": "female", "birthDate": "1985-01-01"})
        episode = json.loads((EXAMPLES / "EpisodeOfCare-iop-eoc-1.json").read_text())
        for key in ("referralRequest", "diagnosis", "team", "statusHistory", "identifier"):
            episode.pop(key, None)
        episode.update({"id": f"eoc-{pid}", "patient": {"reference": f"Patient/{pid}"}, "period": {"start": "2020-01-01"}})
        resources.append(episode)
    schedule = {"url": f"{SD}/session-schedule", "extension": [
        {"url": "timing", "valueTiming": {"repeat": {"dayOfWeek": ["mon", "wed", "thu"], "timeOfDay": ["18:00:00"],
                                                     "duration": 3, "durationUnit": "h"}}},
        {"url": "timeZone", "valueCode": "America/Chicago"},
        {"url": "facilitator", "valueReference": {"reference": "Practitioner/iop-pract-therapist"}},
        {"url": "location", "valueReference": {"reference": "Location/iop-loc-riverside-main"}}]}
    resources.append({"resourceType": "Group", "id": f"bench-g{g}", "meta": {"profile": [f"{SD}/iop-group"]},
                      "extension": [schedule, {"url": f"{SD}/track-service",
                                               "valueReference": {"reference": "HealthcareService/iop-hs-adult-evening"}}],
                      "active": True, "type": "person", "actual": True, "name": f"Bench group {g}",
                      "managingEntity": {"reference": "Organization/iop-org-riverside"},
                      "member": [{"entity": {"reference": f"Patient/bench-g{g}-p{p}"}, "period": {"start": "2020-01-01"}}
                                 for p in range(12)]})
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}


# ------------------------------------------------------------------------------- requests
def attendance(appt: dict) -> tuple[str, str]:
    """($record-attendance path, Parameters) for one session: 9 attended, 1 late, 1 left early, 1 excused."""
    day, offset = appt["start"][:10], appt["start"][19:]
    patients = [p["actor"]["reference"] for p in appt["participant"] if p["actor"]["reference"].startswith("Patient/")]
    params = []
    for i, ref in enumerate(patients):
        parts = [{"name": "patient", "valueReference": {"reference": ref}}]
        if i == 9:
            parts += [{"name": "state", "valueCode": "late"}, {"name": "start", "valueDateTime": f"{day}T18:25:00{offset}"}]
        elif i == 10:
            parts += [{"name": "state", "valueCode": "left-early"}, {"name": "end", "valueDateTime": f"{day}T20:15:00{offset}"}]
        else:
            parts.append({"name": "state", "valueCode": "excused" if i == 11 else "attended"})
        params.append({"name": "attendance", "part": parts})
    return f"/fhir/Appointment/{appt['id']}/$record-attendance", json.dumps({"resourceType": "Parameters", "parameter": params})


def plain(recorded: dict) -> str:
    """A transaction Bundle POSTing the 13 Encounters the operation wrote (ids and meta dropped, partOf by urn:uuid)."""
    encs = [e["resource"] for e in recorded["entry"] if e["resource"]["resourceType"] == "Encounter"]
    session = next(e for e in encs if e["subject"]["reference"].startswith("Group/"))
    entries = []
    for enc in [session] + [e for e in encs if e is not session]:
        body = {k: v for k, v in enc.items() if k not in ("id", "meta")}
        body["meta"] = {k: v for k, v in enc["meta"].items() if k in ("profile", "security")}  # the same content
        if "partOf" in body:
            body["partOf"] = {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}
        full = "urn:uuid:00000000-0000-4000-8000-000000000000" if enc is session else None
        entries.append({**({"fullUrl": full} if full else {}), "resource": body, "request": {"method": "POST", "url": "Encounter"}})
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def own_ticks(server: servers.Gunicorn, dbname: str) -> int:
    """CPU ticks used so far by the server's workers and our database's PostgreSQL backends."""
    pids = server.workers()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if f" {dbname} ".encode() in (d / "cmdline").read_bytes().replace(b"\0", b" "):
                    pids.append(int(d.name))
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
    return total


def drive(base: str, work: list[tuple[str, str]], seconds: float, connections: int) -> dict:
    """Closed-loop clients over `work` (each item sent once) for `seconds`: completed/s and latency percentiles."""
    items = iter(work)
    run = load.posting(base, lambda: next(items, None), seconds, connections, 200)
    latencies, errors = run["latencies"], run["errors"]
    qs = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"requests": len(latencies), "rps": len(latencies) / run["elapsed"], "p50_ms": qs[49], "p99_ms": qs[98],
            "errors": len(errors), "first_error": errors[0] if errors else None}


# ------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=24, help="groups of 12 patients (75 past sessions each)")
    ap.add_argument("--history", type=int, default=100, help="sessions recorded before the database is analysed")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--db", default="iop_bench_attendance")
    args = ap.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="iop-bench-attendance-"))
    runs: dict[str, list[dict]] = {}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database(args.pg, args.db, False))
        server = servers.Gunicorn("wsgi:app", ROOT, {"IOP_DATABASE_URL": url, "IOP_AUTH": "off"}, [], logdir, "/fhir/metadata")
        stack.callback(server.stop)
        t0 = time.perf_counter()
        appts = seed(server.base, args.groups)
        log(f"seeded {args.groups} groups, {len(appts)} sessions in {time.perf_counter() - t0:.0f} s")
        # interleaved across groups, as a program records them (each group's staff its own session): consecutive
        # sessions of one group share their 12 patients and serialize, by design, on the patients' overlap locks
        work = [attendance(a) for a in sorted(appts, key=lambda a: (a["start"], a["id"]))]
        warm = [work.pop() for _ in range(args.history)]
        sample = call(server.base, "POST", warm[0][0], json.loads(warm[0][1]))
        bundle = plain(sample)
        # warm-up and history: every worker has served both kinds, and the tables hold attendance when analysed
        drive(server.base, warm[1:], 600, args.connections)
        drive(server.base, [("/fhir", bundle)] * 20, 60, args.connections)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        for round_ in range(args.rounds):
            for name in ("record-attendance", "plain-transaction"):
                items = [work.pop() for _ in range(min(len(work), int(args.seconds * 200)))] if name == "record-attendance" \
                    else [("/fhir", bundle)] * int(args.seconds * 400)
                before, ours = servers.cpu_ticks(args.db), own_ticks(server, args.db)
                result = drive(server.base, items, args.seconds, args.connections)
                result["foreign_cores"] = servers.foreign_since(before, args.db)  # others' CPU use on a shared machine
                # CPU time per session of the server and its database: what 2 dedicated cores would sustain
                result["cpu_ms"] = (own_ticks(server, args.db) - ours) * 1000 / os.sysconf("SC_CLK_TCK") / max(1, result["requests"])
                runs.setdefault(name, []).append(result)
                log(f"round {round_ + 1} {name}: {result['rps']:.1f}/s, p50 {result['p50_ms']:.1f} ms, "
                    f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']} {result['first_error'] or ''}, "
                    f"other processes used {result['foreign_cores']:.2f} cores, CPU {result['cpu_ms']:.1f} ms per request")
                if name == "record-attendance":
                    work = items[result["requests"]:] + work  # the sessions not sent stay available
    print(report(runs, args))


def report(runs: dict[str, list[dict]], args) -> str:
    best = {name: max(r, key=lambda x: x["rps"]) for name, r in runs.items()}
    lines = ["", f"attendance for a 12-patient session vs a plain transaction of the same 13 Encounters (PostgreSQL, "
                 f"gunicorn -w 2, {args.connections} connections, {args.seconds:.0f} s x {args.rounds} rounds, best kept)",
             f"{'':20} {'sessions/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'others':>7} {'CPU ms':>7} {'2 cores/CPU':>11}"]
    for name, b in best.items():
        lines.append(f"{name:20} {b['rps']:10.1f} {b['p50_ms']:8.1f} {b['p99_ms']:8.1f} {b['foreign_cores']:7.2f} "
                     f"{b['cpu_ms']:7.1f} {2000 / b['cpu_ms']:11.1f}")
    rate = best["record-attendance"]["rps"]
    lines += [f"record-attendance >= 50 sessions/s: {rate:.1f} -> {'PASS' if rate >= 50 else 'FAIL'}",
              f"record-attendance / plain: {rate / best['plain-transaction']['rps']:.2f}",
              f"errors: {sum(r['errors'] for rs in runs.values() for r in rs)}"]
    out = BENCH / "results" / f"attendance-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "argv": sys.argv[1:], "runs": runs},
                              indent=2))
    lines.append(f"results: {out.relative_to(ROOT)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
