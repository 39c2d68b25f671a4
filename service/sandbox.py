"""The sandbox check: the referral round trip against any FHIR R4 server, step by step, with timings.

What an integrator runs against their own server or a public sandbox (HAPI, the SMART test servers) before
going live: `flask sandbox check URL [--token T | --endpoint ID] [--json]`.

    metadata         GET [base]/metadata: an R4 CapabilityStatement; what it states (transaction, conditional create)
    create referral  Patient + ServiceRequest + Task (code fulfill, focus the ServiceRequest) as one transaction,
                     or as single requests when the server states no transaction (fhirclient.FhirClient.transaction)
    poll task        GET Task/id until it is readable (a server may apply writes asynchronously), and it points at the
                     ServiceRequest created with it
    update task      PUT the Task as the performer would: status accepted, a businessStatus (If-Match its version)
    read back        GET Task/id shows the update
    clean up         DELETE what the check created (Task, ServiceRequest, Patient); a server without delete is
                     reported (WARN) with what was left behind

Everything the check writes is synthetic and marked: meta.tag HTEST ("test health data", HL7 v3 ActReason) and
an identifier https://iop.example.org/fhir/sid/sandbox-run|<run id> on each resource. A step that fails makes the
command exit 1; the steps that depended on it are SKIPped; the clean-up runs for whatever was created.
See: https://hl7.org/fhir/R4/workflow-management.html and https://build.fhir.org/ig/HL7/fhir-gravity-sdoh-cc (Task polling)
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import click
from flask.cli import AppGroup

from . import endpoints
from .fhir_fallback import PartialTransactionError, type_id
from .fhirclient import FhirClient, FhirClientError, FhirRequestError

TEST_TAG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST", "display": "test health data"}
RUN_SYSTEM = "https://iop.example.org/fhir/sid/sandbox-run"
BUSINESS_STATUS = "IOP sandbox check: accepted"
CLEANUP_ORDER = ("Task", "ServiceRequest", "Patient")  # the referencing before the referenced
PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"


class CheckFailed(Exception):
    """A step's expectation was not met (the server answered, but not as the round trip needs)."""


class LeftBehind(Exception):
    """A step could not be done in a way that does not fail the check (delete unsupported)."""


@dataclass
class Step:
    step: str
    result: str
    ms: float
    detail: str


@dataclass
class Report:
    url: str
    run: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.result != FAIL for s in self.steps)

    def as_json(self) -> dict:
        return {"url": self.url, "run": self.run, "ok": self.ok, "steps": [asdict(s) for s in self.steps]}

    def table(self) -> str:
        rows = [("step", "result", "ms", "detail")] + [(s.step, s.result, f"{s.ms:.1f}", s.detail) for s in self.steps]
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"Sandbox check of {self.url} (run {self.run})"]
        lines += ["  ".join([r[0].ljust(width[0]), r[1].ljust(width[1]), r[2].rjust(width[2]), r[3]]).rstrip() for r in rows]
        counts = {k: sum(s.result == k for s in self.steps) for k in (PASS, FAIL, WARN, SKIP)}
        lines.append(f"result: {PASS if self.ok else FAIL} ({', '.join(f'{n} {k.lower()}' for k, n in counts.items() if n)})")
        return "\n".join(lines)


@dataclass
class _Run:
    client: FhirClient
    run: str
    poll_seconds: float
    sleep: Callable[[float], None]
    created: dict[str, str] = field(default_factory=dict)  # resource type → id on the server
    task: dict | None = None


# ------------------------------------------------------------------------------- the check
def check(client: FhirClient, *, poll_seconds: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> Report:
    """Run every step against the client's server; the report says what passed, with timings."""
    run = _Run(client, uuid.uuid4().hex[:12], poll_seconds, sleep)
    report = Report(client.base_url, run.run)
    steps: list[tuple[str, Callable[[_Run], str], bool]] = [
        ("metadata", _metadata, True), ("create referral", _create, True), ("poll task", _poll, True),
        ("update task", _update, True), ("read back", _read_back, True), ("clean up", _clean_up, False)]
    blocked = False
    for name, action, needs_success in steps:
        if blocked and needs_success:
            report.steps.append(Step(name, SKIP, 0.0, "an earlier step failed"))
            continue
        step = _timed(name, action, run)
        report.steps.append(step)
        blocked = blocked or step.result == FAIL
    return report


def _timed(name: str, action: Callable[[_Run], str], run: _Run) -> Step:
    began = time.perf_counter()
    try:
        result, detail = PASS, action(run)
    except LeftBehind as warn:
        result, detail = WARN, str(warn)
    except (CheckFailed, FhirClientError) as err:
        result, detail = FAIL, str(err)
    return Step(name, result, (time.perf_counter() - began) * 1000, detail)


def _metadata(run: _Run) -> str:
    support = run.client.support
    if support.statement.get("resourceType") != "CapabilityStatement":
        raise CheckFailed(f"[base]/metadata answered a {support.statement.get('resourceType')}, not a CapabilityStatement")
    if not support.r4:
        raise CheckFailed(f"fhirVersion {support.fhir_version!r}: this check needs FHIR R4 (4.0.x)")
    missing = [f"{i} {t}" for t in CLEANUP_ORDER[::-1] for i in ("create", "read") if not support.supports(i, t)]
    missing += [] if support.supports("update", "Task") else ["update Task"]
    stated = f"FHIR {support.fhir_version}; transaction: {_yes(support.transaction)}; " \
             f"conditional create: {_yes(support.conditional_create('Patient'))}"
    return stated + (f"; not stated (tried anyway): {', '.join(missing)}" if missing else "")


def _create(run: _Run) -> str:
    try:
        response = run.client.transaction(referral(run.run))
    except PartialTransactionError as err:
        _remember(run, [entry for _, entry in sorted(err.applied.items())])
        raise
    _remember(run, response.get("entry") or [])
    if set(run.created) != set(CLEANUP_ORDER):
        raise CheckFailed(f"the answer names {sorted(run.created) or 'nothing'} created, not a Patient, ServiceRequest and Task")
    how = "one transaction" if run.client.support.transaction else "single requests (no transaction stated)"
    return f"{how}: " + ", ".join(f"{t}/{run.created[t]}" for t in CLEANUP_ORDER[::-1])


def _remember(run: _Run, entries: list[dict]) -> None:
    for entry in entries:
        found = type_id(str((entry.get("response") or {}).get("location") or "")) if isinstance(entry, dict) else None
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if found is None and isinstance(resource, dict) and resource.get("id"):
            found = f"{resource.get('resourceType')}/{resource['id']}"
        if found:
            rtype, rid = found.split("/")
            run.created.setdefault(rtype, rid)


def _poll(run: _Run) -> str:
    deadline, reads = time.monotonic() + run.poll_seconds, 0
    while True:
        reads += 1
        try:
            run.task = run.client.read("Task", run.created["Task"])
            break
        except FhirRequestError as err:
            if err.status not in (404, 410) or time.monotonic() >= deadline:
                raise
            run.sleep(0.5)
    focus = str((run.task.get("focus") or {}).get("reference") or "")
    if not focus.endswith(f"ServiceRequest/{run.created['ServiceRequest']}"):
        raise CheckFailed(f"Task/{run.created['Task']}.focus is {focus!r}, not the ServiceRequest created with it")
    return f"Task/{run.created['Task']} status {run.task.get('status')} ({reads} read{'s' if reads > 1 else ''})"


def _update(run: _Run) -> str:
    task = dict(run.task or {})
    task.update(status="accepted", businessStatus={"text": BUSINESS_STATUS})
    version = (task.get("meta") or {}).get("versionId")
    reply = run.client.update(task, if_match=f'W/"{version}"' if version else None)
    return f"HTTP {reply.status}: status accepted, businessStatus {BUSINESS_STATUS!r}" + (" (If-Match)" if version else "")


def _read_back(run: _Run) -> str:
    task = run.client.read("Task", run.created["Task"])
    got = (task.get("status"), (task.get("businessStatus") or {}).get("text"))
    if got != ("accepted", BUSINESS_STATUS):
        raise CheckFailed(f"Task/{task.get('id')} reads back as status {got[0]!r}, businessStatus {got[1]!r}")
    before = ((run.task or {}).get("meta") or {}).get("versionId")
    after = (task.get("meta") or {}).get("versionId")
    return "status accepted, businessStatus kept" + (f"; version {before} → {after}" if before and after else "")


def _clean_up(run: _Run) -> str:
    if not run.created:
        return "nothing was created"
    deleted: list[str] = []
    left: list[str] = []
    for rtype in (t for t in CLEANUP_ORDER if t in run.created):
        ref = f"{rtype}/{run.created[rtype]}"
        try:
            run.client.delete(rtype, run.created[rtype])
            deleted.append(ref)
        except FhirRequestError as err:
            if err.status not in (405, 501) and run.client.support.supports("delete", rtype):
                raise CheckFailed(f"deleting {ref}: {err}; left: {', '.join([ref] + left)}") from err
            left.append(ref)
    if left:
        raise LeftBehind(f"delete not supported by the server; left behind (tagged HTEST, {RUN_SYSTEM}|{run.run}): {', '.join(left)}"
                       + (f"; deleted {', '.join(deleted)}" if deleted else ""))
    return f"deleted {', '.join(deleted)}"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


# ------------------------------------------------------------------------------- the synthetic referral
def referral(run: str) -> dict:
    """A transaction Bundle: a synthetic Patient, a referral ServiceRequest and its fulfilment Task, each tagged HTEST."""
    ids = {t: f"urn:uuid:{uuid.uuid4()}" for t in CLEANUP_ORDER}
    mark = {"meta": {"tag": [TEST_TAG]}, "identifier": [{"system": RUN_SYSTEM, "value": run}]}
    patient = {"resourceType": "Patient", **mark, "active": True, "gender": "unknown",
               "name": [{"use": "official", "family": "Sandbox", "given": ["Synthetic"], "text": "Synthetic Sandbox (test data)"}]}
    order = {"resourceType": "ServiceRequest", **mark, "status": "active", "intent": "order", "subject": {"reference": ids["Patient"]},
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "306226009",
                                  "display": "Referral to mental health counseling service"}],
                      "text": "Synthetic referral (IOP sandbox check)"}}
    task = {"resourceType": "Task", **mark, "status": "requested", "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": ids["ServiceRequest"]}, "for": {"reference": ids["Patient"]},
            "authoredOn": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    entries = [(ids[rtype], r, rtype) for rtype, r in (("Patient", patient), ("ServiceRequest", order), ("Task", task))]
    return {"resourceType": "Bundle", "type": "transaction", "meta": {"tag": [TEST_TAG]}, "entry": [
        {"fullUrl": full_url, "resource": r, "request": {"method": "POST", "url": rtype}} for full_url, r, rtype in entries]}


# ------------------------------------------------------------------------------- the command
sandbox_group = AppGroup("sandbox", help="Try the referral exchange against a FHIR R4 server.")


@sandbox_group.command("check")
@click.argument("url", required=False)
@click.option("--token", envvar="SANDBOX_TOKEN", help="A bearer token for the server (or SANDBOX_TOKEN in the environment).")
@click.option("--endpoint", "endpoint_id", help="Use Endpoint/<id> on this server: its address, credentials, timeouts and rate.")
@click.option("--poll-seconds", default=10.0, show_default=True, type=click.FloatRange(0, 600), help="How long to wait for the Task.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_command(url: str | None, token: str | None, endpoint_id: str | None, poll_seconds: float, as_json: bool) -> None:
    """Run the referral round trip against URL (a FHIR R4 base) and print a pass/fail table; exit 1 when a step fails."""
    client = _client(url, token, endpoint_id)
    report = check(client, poll_seconds=poll_seconds)
    click.echo(json.dumps(report.as_json(), indent=2) if as_json else report.table())
    if not report.ok:
        raise SystemExit(1)


def _client(url: str | None, token: str | None, endpoint_id: str | None) -> FhirClient:
    if endpoint_id:
        if url or token:
            raise click.UsageError("--endpoint takes the address and credentials from the Endpoint: give no URL or --token")
        from .db import get_db  # noqa: PLC0415 (only this option needs our database)

        try:
            with get_db().read() as conn:
                return endpoints.client(endpoints.load(conn, endpoint_id))
        except endpoints.EndpointError as err:
            raise click.UsageError(str(err)) from None
    if not url or not url.startswith(("http://", "https://")):
        raise click.UsageError("give the server's FHIR base URL (http or https), or --endpoint ID")
    if token and not endpoints.private(url):
        raise click.UsageError("a token is only sent over https (or to this machine)")
    return FhirClient(url, token=token)
