"""In-process timing of EpisodeOfCare/$program-outcomes and MedicationRequest/$due on PostgreSQL (issue 10 part C).

    flock /tmp/bench.lock python bench/program_outcomes.py --database postgresql://postgres@127.0.0.1:5432/iop_bench_outcomes

Seeds N finished enrollments of one program (each: 12 attendance Encounters, 4 PHQ-9 and 4 GAD-7 scores, one active
order with a monthly injection given), through the service's write path, then times the two operations and a plain
EpisodeOfCare search returning the same enrollments, in the same run (Flask test client: no HTTP server in between).
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import date, timedelta

from service import create_app, interactions
from service.db import get_db

ORG = "Organization/bench-program"
ATTENDANCE = "https://iop.example.org/fhir/StructureDefinition/attendance-status"
CS = "https://iop.example.org/fhir/CodeSystem"


def _encounter(pid: str, episode: str, kind: str) -> dict:
    return {"resourceType": "Encounter", "status": "finished" if kind == "attended" else "cancelled",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"}, "episodeOfCare": [{"reference": episode}],
            "extension": [{"url": ATTENDANCE, "valueCodeableConcept": {"coding": [{"system": f"{CS}/iop-attendance", "code": kind}]}}]}


def _score(pid: str, code: str, value: int, when: date) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{pid}"}, "valueInteger": value, "effectiveDateTime": when.isoformat()}


def _order(pid: str, rid: str, start: date) -> dict:
    timing = {"repeat": {"boundsPeriod": {"start": start.isoformat()}, "frequency": 1, "period": 4, "periodUnit": "wk"}}
    return {"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "637213"}]},
            "subject": {"reference": f"Patient/{pid}"}, "authoredOn": start.isoformat(), "dosageInstruction": [{"timing": timing}]}


def seed_one(unit, n: int) -> None:
    """One finished enrollment with 12 sessions (2 no-shows), 4 PHQ-9 and 4 GAD-7 scores and an injection order."""
    start = date(2026, 1, 5) + timedelta(days=n % 120)
    end, pid, eid = start + timedelta(days=42), f"bench-p{n}", f"bench-e{n}"
    interactions.update(unit, "Patient", pid, {"resourceType": "Patient", "id": pid})
    interactions.update(unit, "EpisodeOfCare", eid, {
        "resourceType": "EpisodeOfCare", "id": eid, "status": "finished", "patient": {"reference": f"Patient/{pid}"},
        "managingOrganization": {"reference": ORG}, "period": {"start": start.isoformat(), "end": end.isoformat()}})
    for k in range(12):
        interactions.create(unit, _encounter(pid, f"EpisodeOfCare/{eid}", "attended" if k % 6 else "no-show"))
    for week in range(4):
        interactions.create(unit, _score(pid, "44261-6", 18 - 3 * week, start + timedelta(days=7 * week + 1)))
        interactions.create(unit, _score(pid, "70274-6", 15 - 3 * week, start + timedelta(days=7 * week + 1)))
    order = _order(pid, f"bench-rx{n}", start)
    interactions.update(unit, "MedicationRequest", order["id"], order)
    interactions.create(unit, {"resourceType": "MedicationAdministration", "status": "completed",
                               "medicationCodeableConcept": order["medicationCodeableConcept"],
                               "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": start.isoformat(),
                               "request": {"reference": f"MedicationRequest/{order['id']}"}})


def timed(client, url: str, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        resp = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--enrollments", type=int, default=300)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-seed", action="store_true", help="time a database seeded by an earlier run")
    args = parser.parse_args()
    app = create_app({"DATABASE_URL": args.database, "AUTH": "off", "LOG_LEVEL": "WARNING"})
    with app.app_context():
        program = {"resourceType": "Organization", "id": "bench-program", "name": "Bench IOP"}
        interactions.run(get_db(), lambda u: interactions.update(u, "Organization", "bench-program", program))
        t0 = time.perf_counter()
        for n in range(0 if args.no_seed else args.enrollments):
            interactions.run(get_db(), lambda u, n=n: seed_one(u, n))
        print(f"seeded {0 if args.no_seed else args.enrollments} enrollments in {time.perf_counter() - t0:.1f} s", flush=True)
    client = app.test_client()
    period = "period-start=2026-01-01&period-end=2026-12-31"
    count = f"_count={args.enrollments}"
    for label, url in (("$program-outcomes", f"/fhir/EpisodeOfCare/$program-outcomes?owner={ORG}&{period}"),
                       ("plain EpisodeOfCare search, same enrollments", f"/fhir/EpisodeOfCare?organization={ORG}&{count}"),
                       ("$due (all orders, 90 days)", "/fhir/MedicationRequest/$due?as-of=2026-01-01&days=90"),
                       ("plain MedicationRequest search, same orders", f"/fhir/MedicationRequest?status=active&{count}")):
        p50, p99 = timed(client, url, args.runs)
        print(f"{label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
