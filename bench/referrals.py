"""Referral intake throughput: a hospital's referral transaction (8 resources, workflow included) against a
plain transaction Bundle of the same 8 resources, on PostgreSQL, in the same run.

    python bench/referrals.py                 # 20 s per workload, 2 rounds each, 4 connections
    python bench/referrals.py --seconds 5 --rounds 1   # a smoke check

The referral Bundle is examples/journey-01-referral.json cut to Patient, Condition, Coverage, Consent,
discharge summary DocumentReference, MedicationRequest, ServiceRequest (iop-referral) and Task
(iop-referral-task), every entry a conditional create on a business identifier made unique per request.
For each referral the service checks the profiles the resources claim, resolves the referral's
references, checks the Task's owner, transition and uniqueness, and (for subscribers) writes outbox rows.
The plain Bundle has the same 8 resources and sizes, the same profile claims on Patient, Condition,
Coverage, Consent, DocumentReference and MedicationRequest, and the referral semantics taken away (the
ServiceRequest and Task claim no referral profile, no requested level of care, a Task with code
`approve`), so the difference is what makes it a referral: the iop-referral and iop-referral-task checks
plus the workflow.

Targets (issue "step-down referrals"): >= 80 referrals/s, and a referral costing at most 30 % more time
than the plain transaction.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(ROOT), str(BENCH)) if p not in sys.path]

import load  # noqa: E402
import servers  # noqa: E402
from payloads import TOKEN  # noqa: E402
from run import database, log  # noqa: E402

KEEP = ("Patient", "Condition", "Coverage", "Consent", "DocumentReference", "MedicationRequest", "ServiceRequest", "Task")
SETUP = ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole")
SD = "https://iop.example.org/fhir/StructureDefinition/"


def referral() -> dict:
    """The 8-entry referral transaction; TOKEN makes every business identifier unique per request."""
    bundle = json.loads((ROOT / "examples" / "journey-01-referral.json").read_text())
    seen: set[str] = set()
    entries = []
    for entry in bundle["entry"]:
        rtype = entry["resource"]["resourceType"]
        if rtype in KEEP and rtype not in seen:
            seen.add(rtype)
            entries.append(entry)
    kept = {e["fullUrl"] for e in entries}
    for entry in entries:
        resource = entry["resource"]
        for name in ("supportingInfo", "reasonReference", "input"):
            if isinstance(resource.get(name), list):
                resource[name] = [r for r in resource[name] if _kept(r, kept)] or None
                if resource[name] is None:
                    resource.pop(name)
        for ident in resource.get("identifier", []) if isinstance(resource.get("identifier"), list) else [resource["identifier"]]:
            ident["value"] = f"{ident['value']}-{TOKEN}"
        first = resource["identifier"][0] if isinstance(resource["identifier"], list) else resource["identifier"]
        entry["request"] = {"method": "POST", "url": resource["resourceType"],
                            "ifNoneExist": f"identifier={first['system']}|{first['value']}"}
        resource.pop("id", None)
    bundle["entry"] = entries
    return bundle


def _kept(ref: object, kept: set[str]) -> bool:
    target = ref.get("reference", "") if isinstance(ref, dict) else ""
    target = ref.get("valueReference", {}).get("reference", "") if isinstance(ref, dict) and "valueReference" in ref else target
    return not target.startswith("urn:uuid:") or target in kept


def plain(bundle: dict) -> dict:
    """The same resources, still claiming their profiles, with the referral semantics removed: the ServiceRequest and
    Task claim no referral profile, the ServiceRequest asks for no level of care, the Task is not a fulfilment."""
    out = copy.deepcopy(bundle)
    for entry in out["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] in ("ServiceRequest", "Task") and isinstance(resource.get("meta"), dict):
            resource["meta"].pop("profile", None)
        if resource["resourceType"] == "ServiceRequest":
            resource["extension"] = [e for e in resource["extension"] if not e["url"].startswith(SD + "requested-level-of-care")]
        if resource["resourceType"] == "Task":
            resource["code"] = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "approve",
                                            "display": "Activate/approve the focal resource"}]}
    return out


def setup(base: str) -> None:
    """The IOP's directory and staff and the hospital's clinicians: what a referral points at."""
    for file in sorted((ROOT / "examples").glob("*.json")):
        body = json.loads(file.read_text())
        if body["resourceType"] in SETUP:
            r = requests.put(f"{base}/fhir/{body['resourceType']}/{body['id']}", data=json.dumps(body),
                             headers={"Content-Type": "application/fhir+json"}, timeout=30)
            r.raise_for_status()


def smoke(base: str, body: str, referral_bundle: bool) -> None:
    """One request of each kind must succeed and (for a referral) leave a Task owned by the program."""
    r = requests.post(f"{base}/fhir", data=body.replace(TOKEN, f"smoke{int(time.time() * 1000)}"),
                      headers={"Content-Type": "application/fhir+json"}, timeout=30)
    if r.status_code != 200:
        raise SystemExit(f"smoke request failed: {r.status_code} {r.text[:500]}")
    if referral_bundle:
        task = next(e for e in r.json()["entry"] if e["response"]["location"].startswith("Task/"))
        got = requests.get(f"{base}/fhir/{task['response']['location'].split('/_history')[0]}", timeout=30).json()
        assert got["status"] == "requested" and got["owner"]["reference"] == "Organization/iop-org-riverside", got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of plain and referral (the best of each is kept)")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--engine", choices=("wrk", "python"))
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--db", default="iop_bench_referrals")
    args = ap.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="iop-bench-referrals-"))
    ref = json.dumps(referral(), separators=(",", ":"))
    bodies = {"plain": json.dumps(plain(json.loads(ref)), separators=(",", ":")), "referral": ref}
    runs: dict[str, list[dict]] = {"plain": [], "referral": []}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database(args.pg, args.db, False))
        server = servers.Gunicorn("wsgi:app", ROOT, {"IOP_DATABASE_URL": url, "IOP_AUTH": "off"}, [], logdir, "/fhir/metadata")
        stack.callback(server.stop)
        setup(server.base)
        for name, body in bodies.items():
            smoke(server.base, body, name == "referral")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")  # planner statistics, as autovacuum keeps them on a database in use
        log(f"gunicorn -w 2 on {server.base}; {load.engine(args.engine)} with {args.connections} connections, "
            f"{args.seconds:g} s per run; server log in {logdir}")
        for round_ in range(args.rounds):
            for name, body in bodies.items():
                w = load.Workload(name, "POST", ("/fhir",), body)
                result = load.run(server.base, w, seconds=args.seconds, connections=args.connections, warmup=args.warmup,
                                  engine_name=args.engine)
                runs[name].append(result)
                log(f"round {round_ + 1} {name}: {result['rps']:.1f}/s, p50 {result['p50_ms']:.1f} ms, "
                    f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}")
    print(report(runs, args))


def report(runs: dict[str, list[dict]], args) -> str:
    best = {name: max(r, key=lambda x: x["rps"]) for name, r in runs.items()}
    overhead = best["plain"]["rps"] / best["referral"]["rps"] - 1
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    lines = ["", "referral intake vs plain 8-entry transaction (PostgreSQL, gunicorn -w 2)",
             f"{'':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"]
    for name in ("plain", "referral"):
        b = best[name]
        lines.append(f"{name:10} {b['rps']:8.1f} {b['p50_ms']:8.1f} {b['p99_ms']:8.1f}")
    ok_rate, ok_cost = best["referral"]["rps"] >= 80, overhead <= 0.30
    lines += [f"referrals/s >= 80: {best['referral']['rps']:.1f} -> {'PASS' if ok_rate else 'FAIL'}",
              f"referral time over plain <= 30 %: {overhead * 100:.1f} % -> {'PASS' if ok_cost else 'FAIL'}",
              f"errors: {errors}"]
    out = BENCH / "results" / f"referrals-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "argv": sys.argv[1:],
                               "runs": runs, "overhead": overhead}, indent=2))
    lines.append(f"results: {out.relative_to(ROOT)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
