"""Referral service levels of a program over a period, as an R4 MeasureReport: `Task/$referral-metrics`.

Four figures (local codes, iop-referral-measure): median hours from receipt to acknowledgement, to decision and
to first session, and the share of first (intake) appointments kept. Every time comes from the referral Task's
versions (resource_version.last_updated: the server clock that stamps meta.lastUpdated), read with one SQL
query for all the program's referral Tasks, never Task by Task. Definitions and their reasons: docs/referrals.md,
"Service-level figures". MeasureReport: https://hl7.org/fhir/R4/measurereport.html
"""
from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from flask import Response, request
from sqlalchemy import Connection, and_, false, func, select

from . import conformance, dates, search, wire
from .db import get_db
from .errors import BadRequest, NotFound
from .search.query import criterion_condition
from .tables import resource, resource_version, sp_reference
from .workflows import task_states

MEASURE = f"{conformance.CANONICAL}/Measure/referral-service-levels"
FIGURE = f"{conformance.CANONICAL}/CodeSystem/iop-referral-measure"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
UCUM = "http://unitsofmeasure.org"
FULFILL = "http://hl7.org/fhir/CodeSystem/task-code|fulfill"

NOT_ACKNOWLEDGED = ("draft", "requested", "cancelled", "entered-in-error")  # withdrawn by the referrer is no acknowledgement
DECIDED = ("accepted", "rejected")
KEPT = ("arrived", "checked-in", "fulfilled")
SKIPPED = ("cancelled", "entered-in-error")  # a rescheduled or mistaken appointment is not the intake appointment
PARAMETERS = ("owner", "period-start", "period-end")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_OWNER = re.compile(r"^Organization/[A-Za-z0-9\-.]{1,64}$")
CHUNK = 500  # ids per IN list: far below SQLite's and PostgreSQL's bind limits


@dataclass(frozen=True)
class Query:
    """What the report is for: the program Organization and the period, as given and as [low, high) naive UTC."""

    owner: str
    start: str
    end: str
    low: datetime
    high: datetime
    owner_expression: str = "owner"


@dataclass
class Timeline:
    """When one referral reached each step, from its Task's versions (None: not yet)."""

    task: str
    referral: str | None
    received: datetime
    acknowledged: datetime | None = None
    decided: datetime | None = None
    first_session: datetime | None = None
    intake: str | None = None  # the Task's first intake outcome: "no-show" or "admitted"


# ------------------------------------------------------------------------------- HTTP
def operation() -> Response:
    """GET Task/$referral-metrics?owner=&period-start=&period-end= (or POST a Parameters body)."""
    query = parse(*_inputs())
    with get_db().read() as conn:
        report = measure_report(conn, query, wire.base_url(), dates.utcnow())
    return wire.respond(json.dumps(report, ensure_ascii=False, separators=(",", ":")))


def _inputs() -> tuple[dict[str, str], str]:
    """The raw parameter values and the prefix that names a parameter in an error's expression."""
    if request.method == "GET":
        extra = [k for k in request.args if k not in PARAMETERS and k not in ("_format", "_pretty")]
        if extra:
            raise BadRequest(f"Unknown parameter '{extra[0]}' for $referral-metrics", expression=extra[0])
        doubled = [k for k in PARAMETERS if len(request.args.getlist(k)) > 1]
        if doubled:
            raise BadRequest(f"Parameter '{doubled[0]}' is repeated; give it once", expression=doubled[0])
        return {k: request.args[k] for k in PARAMETERS if k in request.args}, ""
    return _from_parameters(wire.json_body(request)), "Parameters.parameter"


def _from_parameters(body: object) -> dict[str, str]:
    """owner (valueString or valueReference), period-start and period-end (valueDate) from a Parameters body."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("$referral-metrics takes a Parameters resource (or use GET)", expression="Parameters")
    out: dict[str, str] = {}
    for p in body.get("parameter", []) if isinstance(body.get("parameter"), list) else []:
        name = p.get("name") if isinstance(p, dict) else None
        if name not in PARAMETERS or name in out:
            raise BadRequest(f"Unexpected or repeated parameter '{name}'", expression=f"Parameters.parameter[{name}]")
        reference = p.get("valueReference")
        value = p.get("valueString") or p.get("valueDate") or (reference.get("reference") if isinstance(reference, dict) else None)
        out[name] = value if isinstance(value, str) else ""
    return out


def parse(raw: dict[str, str], prefix: str) -> Query:
    """The owner and period, or a 400 naming the parameter that is missing or wrong."""
    def where(name: str) -> str:
        return f"{prefix}[{name}]" if prefix else name

    missing = [k for k in PARAMETERS if not raw.get(k)]
    if missing:
        raise BadRequest(f"Parameter '{missing[0]}' is required", code="required", expression=where(missing[0]))
    if not _OWNER.match(raw["owner"]):
        raise BadRequest(f"Parameter 'owner' must be the program's Organization as Organization/[id], not '{raw['owner']}'",
                         expression=where("owner"))
    low, high = _day(raw["period-start"], where("period-start"))[0], _day(raw["period-end"], where("period-end"))[1]
    if high <= low:
        raise BadRequest(f"period-end {raw['period-end']} is before period-start {raw['period-start']}",
                         expression=where("period-end"))
    return Query(raw["owner"], raw["period-start"], raw["period-end"], low, high, where("owner"))


def _day(text: str, where: str) -> tuple[datetime, datetime]:
    """A FHIR date (YYYY, YYYY-MM or YYYY-MM-DD, UTC days) as [low, high)."""
    try:
        if _DATE.match(text):
            return dates.parse_range(text)
    except dates.DateFormatError:
        pass
    raise BadRequest(f"'{text}' is not a date (YYYY-MM-DD, YYYY-MM or YYYY)", expression=where)


# ------------------------------------------------------------------------------- the report
def measure_report(conn: Connection, query: Query, base_url: str, now: datetime) -> dict:
    """The MeasureReport (summary) of the program's referrals received in the period."""
    owners = program_references(conn, query, base_url)
    timelines = timelines_of(conn, owners, query.low, query.high, base_url)
    appointments = intake_appointments(conn, [t.referral for t in timelines if t.referral])
    kept = [first_appointment_kept(appointments.get(t.referral or "", []), t) for t in timelines]
    total = len(timelines)
    return {
        "resourceType": "MeasureReport", "status": "complete", "type": "summary", "measure": MEASURE,
        "date": dates.instant(now), "reporter": {"reference": query.owner},
        "period": {"start": query.start, "end": query.end},
        "group": [
            duration_group("time-to-acknowledge", "Time to acknowledge", total, [_hours(t, t.acknowledged) for t in timelines]),
            duration_group("time-to-decision", "Time to decision", total, [_hours(t, t.decided) for t in timelines]),
            duration_group("time-to-first-session", "Time to first session", total,
                           [_hours(t, t.first_session) for t in timelines]),
            share_group("first-appointment-kept", "First (intake) appointment kept", total, kept),
        ],
        **({"evaluatedResource": [{"reference": f"Task/{t.task}"} for t in timelines]} if timelines else {}),
    }


def program_references(conn: Connection, query: Query, base_url: str) -> list[str]:
    """The Organization and every HealthcareService (track) it provides: a referral Task may be owned by either."""
    owner, R = query.owner, resource
    found = conn.execute(select(R.c.deleted).where(R.c.type == "Organization", R.c.id == owner.split("/", 1)[1])).first()
    if found is None or found.deleted:
        raise NotFound(f"{owner} is not known", expression=query.owner_expression)
    services = search.find(conn, "HealthcareService", f"organization={owner}", base_url, limit=1000)
    return [owner] + [f"HealthcareService/{row.id}" for row in services]


def timelines_of(conn: Connection, owners: list[str], low: datetime, high: datetime, base_url: str) -> list[Timeline]:
    """One Timeline per referral Task of the program whose first version falls in [low, high), by receipt time."""
    V = resource_version
    received = func.min(V.c.last_updated)
    in_period = (select(V.c.id).where(V.c.type == "Task", V.c.id.in_(_task_ids(owners, base_url)))
                 .group_by(V.c.id).having(and_(received >= low, received < high)))
    rows = conn.execute(select(V.c.id, V.c.last_updated, V.c.content).where(V.c.type == "Task", V.c.id.in_(in_period))
                        .order_by(V.c.id, V.c.version)).all()
    by_task: dict[str, list] = {}
    for row in rows:
        by_task.setdefault(row.id, []).append(row)
    return sorted((timeline(tid, versions) for tid, versions in by_task.items()), key=lambda t: (t.received, t.task))


def _task_ids(owners: list[str], base_url: str):
    """Ids of current fulfilment Tasks owned by the program: the search Task?owner=…&code=fulfill, as a subquery."""
    req = search.parse_query("Task", urlencode({"owner": ",".join(owners), "code": FULFILL}))
    R = resource
    return select(R.c.id).where(R.c.type == "Task", R.c.deleted == false(),
                                *[criterion_condition(c, R, base_url) for c in req.criteria])


def timeline(task_id: str, versions: list) -> Timeline:
    """The first time each step shows in a Task's versions (oldest first); a deletion leaves no content."""
    line = Timeline(task_id, None, versions[0].last_updated)
    for version in versions:
        task = json.loads(version.content) if version.content else {}
        status, step, at = task.get("status"), task_states.step_of(task), version.last_updated
        if status and status not in NOT_ACKNOWLEDGED and line.acknowledged is None:
            line.acknowledged = at
        if status in DECIDED and line.decided is None:
            line.decided = at
        if (step == "admitted" or status == "in-progress") and line.first_session is None:
            line.first_session = at
        if line.intake is None and (step == "no-show" or line.first_session is not None):
            line.intake = "no-show" if step == "no-show" else "admitted"
        focus = (task.get("focus") or {}).get("reference") if isinstance(task.get("focus"), dict) else None
        if isinstance(focus, str) and focus.startswith("ServiceRequest/"):
            line.referral = focus.split("/", 1)[1]
    return line


def intake_appointments(conn: Connection, referral_ids: Iterable[str]) -> dict[str, list[dict]]:
    """Current Appointments basedOn each referral ServiceRequest (its intake appointments), by ServiceRequest id."""
    ref, R, ids = sp_reference, resource, sorted(set(referral_ids))
    out: dict[str, list[dict]] = {}
    for start in range(0, len(ids), CHUNK):
        linked = select(ref.c.resource_pk, ref.c.target_id).where(
            ref.c.type == "Appointment", ref.c.name == "based-on", ref.c.target_type == "ServiceRequest",
            ref.c.target_id.in_(ids[start:start + CHUNK])).subquery()
        rows = conn.execute(select(linked.c.target_id, R.c.content).join(R, R.c.pk == linked.c.resource_pk)
                            .where(R.c.deleted == false())).all()
        for target, content in rows:
            out.setdefault(target, []).append(json.loads(content))
    return out


def first_appointment_kept(appointments: list[dict], line: Timeline) -> bool | None:
    """Whether the referral's first intake appointment was kept (None: no outcome yet, or no appointment and no step).

    The appointment's own status decides when staff recorded it; otherwise the Task's first intake outcome
    (no-show, or admitted: the patient came) does.
    """
    live = sorted((a for a in appointments if a.get("status") not in SKIPPED), key=_start)
    status = live[0].get("status") if live else None
    if status == "noshow":
        return False
    if status in KEPT:
        return True
    return {"no-show": False, "admitted": True}.get(line.intake or "")


def _start(appointment: dict) -> tuple[datetime, str]:
    try:
        return dates.parse_range(appointment["start"])[0], appointment.get("id", "")
    except (KeyError, TypeError, dates.DateFormatError):
        return dates.MAX, appointment.get("id", "")


def _hours(line: Timeline, at: datetime | None) -> float | None:
    """Hours from receipt to `at` (never negative: versions of one Task are stamped in order)."""
    return None if at is None else max(0.0, (at - line.received).total_seconds() / 3600)


# ------------------------------------------------------------------------------- groups
def duration_group(code: str, display: str, total: int, hours: list[float | None]) -> dict:
    """A continuous-variable group: referrals received, those that reached the step, and the median hours."""
    reached = [h for h in hours if h is not None]
    group = {"code": _concept(FIGURE, code, display),
             "population": [_population("initial-population", "Initial Population", total),
                            _population("measure-population", "Measure Population", len(reached))]}
    if reached:
        group["measureScore"] = {"value": round(statistics.median(reached), 2), "unit": "h", "system": UCUM, "code": "h"}
    return group


def share_group(code: str, display: str, total: int, kept: list[bool | None]) -> dict:
    """A proportion group: the referrals whose first intake appointment has an outcome, and those kept."""
    known = [k for k in kept if k is not None]
    group = {"code": _concept(FIGURE, code, display),
             "population": [_population("initial-population", "Initial Population", total),
                            _population("denominator", "Denominator", len(known)),
                            _population("numerator", "Numerator", sum(known))]}
    if known:
        group["measureScore"] = {"value": round(sum(known) / len(known), 4), "unit": "1", "system": UCUM, "code": "1"}
    return group


def _population(code: str, display: str, count: int) -> dict:
    return {"code": _concept(POPULATION, code, display), "count": count}


def _concept(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}
