"""Scoring a PHQ-9 QuestionnaireResponse against a plain create of the same response, on PostgreSQL, in the same run.

    flock /tmp/bench.lock python bench/scoring.py                 # 20 s per workload in 1 s slices, 4 connections
    flock /tmp/bench.lock python bench/scoring.py --seconds 3     # a smoke check

Seeds P patients, each with an active EpisodeOfCare, a CareTeam and a PHQ-9 goal (examples/Goal-iop-goal-1-phq9.json).
Workloads, each a POST of one QuestionnaireResponse (9 answers, linked to its episode by the workflow-episodeOfCare
extension), patients taken in turn:
- plain: the same response naming a questionnaire the service does not score (same size, same checks otherwise);
- scored: the PHQ-9 (item 9 = 0): answers checked, episode read and checked, the result Observation written, the alert
  check (negative), and the goal's achievement followed (goal search, score history, Goal update when it moves);
- scored+alert: item 9 > 0, which also writes the Task for the care team and the patient's Flag (information).
Closed-loop clients (threads with one keep-alive connection each). The workloads alternate in short slices (1 s) for
the whole run, and each kind's figures are taken over all its slices, so a change in the machine's load (it is shared)
falls on all kinds alike. Target (issue 10): scored <= 2x the plain create (time per request, from requests/s).
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(ROOT), str(BENCH)) if p not in sys.path]

import load  # noqa: E402
import servers  # noqa: E402
from run import database, log  # noqa: E402

FHIR = "application/fhir+json"
Q = "https://iop.example.org/fhir/Questionnaire"
EPISODE_EXT = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"
ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
ANSWERS = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


def call(base: str, method: str, path: str, body: object | None = None) -> dict:
    status, out = servers.request(base, method, path, json.dumps(body) if body is not None else None)
    if status >= 300:
        raise SystemExit(f"{method} {path} failed: {status} {json.dumps(out)[:500]}")
    return out


def seed(base: str, patients: int) -> None:
    """The program, and per patient: Patient, CareTeam, active EpisodeOfCare, PHQ-9 goal (one transaction each 50)."""
    org = json.loads((ROOT / "examples" / "Organization-iop-org-riverside.json").read_text())
    call(base, "PUT", f"/fhir/Organization/{org['id']}", org)
    goal = json.loads((ROOT / "examples" / "Goal-iop-goal-1-phq9.json").read_text())
    goal.pop("addresses")
    for chunk in range(0, patients, 50):
        resources = []
        for p in range(chunk, min(chunk + 50, patients)):
            ref = {"reference": f"Patient/bench-p{p}"}
            resources += [
                {"resourceType": "Patient", "id": f"bench-p{p}", "name": [{"family": f"Bench{p}"}], "gender": "female"},
                {"resourceType": "CareTeam", "id": f"bench-ct{p}", "status": "active", "subject": ref},
                {"resourceType": "EpisodeOfCare", "id": f"bench-eoc{p}", "status": "active", "patient": ref,
                 "managingOrganization": {"reference": f"Organization/{org['id']}"}, "period": {"start": "2026-01-01"},
                 "team": [{"reference": f"CareTeam/bench-ct{p}"}]},
                dict(goal, id=f"bench-goal{p}", subject=ref, expressedBy=ref)]
        call(base, "POST", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]})


def response(questionnaire: str, patient: int, scores: list[int], n: int) -> str:
    return json.dumps({
        "resourceType": "QuestionnaireResponse", "questionnaire": f"{Q}/{questionnaire}", "status": "completed",
        "extension": [{"url": EPISODE_EXT, "valueReference": {"reference": f"EpisodeOfCare/bench-eoc{patient}"}}],
        "subject": {"reference": f"Patient/bench-p{patient}"}, "source": {"reference": f"Patient/bench-p{patient}"},
        "authored": f"2026-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}T10:00:00Z",
        "item": [{"linkId": link, "answer": [{"valueCoding": {"system": "http://loinc.org", "code": ANSWERS[s]}}]}
                 for link, s in zip(ITEMS, scores, strict=True)]}, separators=(",", ":"))


def bodies(kind: str, patients: int, count: int) -> list[str]:
    """`count` request bodies of one workload, patients in turn, scores varying so goals move."""
    out = []
    for n in range(count):
        base = [(n + i) % 3 for i in range(8)]
        item9 = 1 if kind == "scored+alert" else 0
        questionnaire = "bench-unscored-phq9" if kind == "plain" else "iop-phq9"
        out.append(response(questionnaire, n % patients, base + [item9], n))
    return out


def drive(base: str, feed, seconds: float, connections: int) -> dict:
    """Closed-loop clients POSTing bodies from `feed` for `seconds`: elapsed, latencies, errors."""
    return load.posting(base, lambda: ("/fhir/QuestionnaireResponse", next(feed)), seconds, connections, 201)


def summary(slices: list[dict]) -> dict:
    """One kind's figures over all its slices."""
    latencies = [x for s in slices for x in s["latencies"]]
    errors = [e for s in slices for e in s["errors"]]
    qs = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"requests": len(latencies), "rps": len(latencies) / sum(s["elapsed"] for s in slices), "p50_ms": qs[49],
            "p99_ms": qs[98], "mean_ms": statistics.fmean(latencies) if latencies else 0.0, "errors": len(errors),
            "first_error": errors[0] if errors else None}


def check(base: str, patients: int) -> None:
    """A scored response must leave its Observation and move the goal; a plain one must leave none."""
    scored = call(base, "POST", "/fhir/QuestionnaireResponse", json.loads(bodies("scored+alert", patients, 1)[0]))
    found = call(base, "GET", f"/fhir/Observation?derived-from=QuestionnaireResponse/{scored['id']}")
    assert found.get("total", len(found.get("entry", []))) == 1, found
    tasks = call(base, "GET", "/fhir/Task?patient=Patient/bench-p0")
    assert tasks.get("entry"), tasks
    plain = call(base, "POST", "/fhir/QuestionnaireResponse", json.loads(bodies("plain", patients, 1)[0]))
    assert not call(base, "GET", f"/fhir/Observation?derived-from=QuestionnaireResponse/{plain['id']}").get("entry")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20, help="seconds of load per kind, in slices")
    ap.add_argument("--slice", type=float, default=1.0, help="seconds per slice; the kinds alternate slice by slice")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--db", default="iop_bench_scoring")
    args = ap.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="iop-bench-scoring-"))
    kinds = ("plain", "scored", "scored+alert")
    slices: dict[str, list[dict]] = {kind: [] for kind in kinds}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database(args.pg, args.db, False))
        server = servers.Gunicorn("wsgi:app", ROOT, {"IOP_DATABASE_URL": url, "IOP_AUTH": "off"}, [], logdir, "/fhir/metadata")
        stack.callback(server.stop)
        seed(server.base, args.patients)
        check(server.base, args.patients)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        feeds = {kind: itertools.cycle(bodies(kind, args.patients, 5000)) for kind in kinds}
        for kind in kinds:  # warm-up: every worker has served each kind
            drive(server.base, feeds[kind], 2, args.connections)
        for _ in range(max(1, round(args.seconds / args.slice))):
            for kind in kinds:
                slices[kind].append(drive(server.base, feeds[kind], args.slice, args.connections))
        runs = {kind: summary(s) for kind, s in slices.items()}
        for kind, r in runs.items():
            log(f"{kind}: {r['rps']:.1f}/s, mean {r['mean_ms']:.1f} ms, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                f"errors {r['errors']} {r['first_error'] or ''}")
    print(report(runs, args))


def report(runs: dict[str, dict], args) -> str:
    lines = ["", f"PHQ-9 QuestionnaireResponse create: scored vs plain (PostgreSQL, gunicorn -w 2, {args.connections} "
                 f"connections, {args.patients} patients, {args.seconds:.0f} s per kind in {args.slice:g} s slices, alternating)",
             f"{'':14} {'req/s':>8} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'time vs plain':>14}"]
    for name, b in runs.items():
        lines.append(f"{name:14} {b['rps']:8.1f} {b['mean_ms']:8.1f} {b['p50_ms']:8.1f} {b['p99_ms']:8.1f} "
                     f"{runs['plain']['rps'] / b['rps']:13.2f}x")
    ratio = runs["plain"]["rps"] / runs["scored"]["rps"]
    lines += [f"scored <= 2x plain: {ratio:.2f}x -> {'PASS' if ratio <= 2 else 'FAIL'}",
              f"errors: {sum(r['errors'] for r in runs.values())}"]
    out = BENCH / "results" / f"scoring-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "argv": sys.argv[1:], "runs": runs,
                               "ratio": ratio}, indent=2))
    lines.append(f"results: {out.relative_to(ROOT)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
