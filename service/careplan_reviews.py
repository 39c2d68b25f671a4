"""CarePlan/$review-due: the worklist of IOP treatment plans whose review is due (OperationDefinition
CarePlan-review-due, profiles/input/fsh/treatment-plans.fsh).

An active plan's last review is its current version: activation and every review are new versions (a review of an
active plan needs its reviewer, workflows/careplans.py), so the current version's lastUpdated is when it was last
looked at. It is due IOP_CAREPLAN_REVIEW_DAYS (default 30) days later. The due date is computed, not stored: a
server-written date would cost each review a second version, and a changed setting moves every due date at once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Response, current_app, request
from sqlalchemy import Connection

from . import conformance, dates, ops, privacy, search, wire
from .db import get_db
from .errors import BadRequest, Forbidden
from .workflows import records

DEFINITION = f"{conformance.CANONICAL}/OperationDefinition/CarePlan-review-due"
TREATMENT_PLAN = f"{records.CS}/iop-careplan-category|iop-treatment-plan"
MAX_PLANS = 5000  # active treatment plans looked at per request (an IOP has hundreds)
MEMBER_TYPES = ("Practitioner", "PractitionerRole", "RelatedPerson", "Patient")


@dataclass(frozen=True)
class Due:
    plan: dict
    last_reviewed: datetime
    due: date
    days_overdue: int


# ------------------------------------------------------------------------------- HTTP
def operation() -> Response:
    """GET CarePlan/$review-due?date=YYYY-MM-DD&member=Practitioner/{id} (or POST a Parameters body)."""
    if privacy.is_outside():
        raise Forbidden("$review-due is for the program's own staff tools", code="forbidden")
    values = _inputs()
    day = _day(values.get("date")) or dates.utcnow().date()
    member = _member(values.get("member"))
    with get_db().read() as conn:
        found = reviews_due(conn, day, current_app.config["IOP"]["CAREPLAN_REVIEW_DAYS"], member)
    return wire.respond(json.dumps(as_parameters(found), ensure_ascii=False, separators=(",", ":")))


def _inputs() -> dict[str, object]:
    values: dict[str, object] = {k: v for k, v in request.args.items() if not k.startswith("_")}
    if request.method == "POST":
        body = wire.json_body(request)
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise BadRequest("$review-due takes a Parameters resource", expression="Parameters")
        for p in body.get("parameter", []):
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                values[p["name"]] = next((v for k, v in p.items() if k.startswith("value")), None)
    unknown = sorted(set(values) - {"date", "member"})
    if unknown:
        raise BadRequest(f"Unknown parameter '{unknown[0]}' (date, member)", expression=unknown[0])
    return values


def _day(raw: object) -> date | None:
    if raw is None:
        return None
    try:
        if isinstance(raw, str) and len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise BadRequest(f"Parameter 'date' must be a date (YYYY-MM-DD), not {raw!r}", expression="date")


def _member(raw: object) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        raw = raw.get("reference")
    parts = records.split({"reference": raw})
    if parts is None or parts[0] not in MEMBER_TYPES or "/_history/" in str(raw):
        raise BadRequest("Parameter 'member' must be a reference such as 'Practitioner/{id}'", expression="member")
    return f"{parts[0]}/{parts[1]}"


# ------------------------------------------------------------------------------- the worklist
def reviews_due(conn: Connection, day: date, review_days: int, member: str | None = None) -> list[Due]:
    """Active treatment plans due for review on or before `day`, most overdue first."""
    cutoff = day - timedelta(days=review_days) + timedelta(days=1)  # last reviewed before this day: due on or before `day`
    rows = search.find(conn, "CarePlan", f"status=active&category={TREATMENT_PLAN}&_lastUpdated=lt{cutoff.isoformat()}",
                       limit=MAX_PLANS)
    plans = [json.loads(r.content) for r in rows]
    if member is not None:
        plans = [p for p in plans if member in _members(conn, p)]
    out = []
    for plan in plans:
        last = dates.parse_range(plan["meta"]["lastUpdated"])[0]
        due = last.date() + timedelta(days=review_days)
        out.append(Due(plan, last, due, (day - due).days))
    return sorted(out, key=lambda d: (d.last_reviewed, d.plan["id"]))


def _members(conn: Connection, plan: dict) -> set[str]:
    teams = [parts for t in plan.get("careTeam", []) if (parts := records.split(t))]
    return {ref for row in search.fetch(conn, teams)
            for p in json.loads(row.content).get("participant", []) if (ref := records.ref_text(p.get("member")))}


def as_parameters(found: list[Due]) -> dict:
    """One `review` per plan (no parameter at all when nothing is due: FHIR has no empty arrays)."""
    out: dict = {"resourceType": "Parameters"}
    if found:
        out["parameter"] = _items(found)
    return out


def _items(found: list[Due]) -> list[dict]:
    return [{"name": "review", "part": [
        {"name": "carePlan", "valueReference": _reference(f"CarePlan/{d.plan['id']}", d.plan.get("title"))},
        {"name": "patient", "valueReference": {"reference": records.ref_text(d.plan.get("subject")) or ""}},
        {"name": "lastReviewed", "valueInstant": d.plan["meta"]["lastUpdated"]},
        {"name": "due", "valueDate": d.due.isoformat()},
        {"name": "daysOverdue", "valueInteger": d.days_overdue}]} for d in found]


def _reference(ref: str, display: object) -> dict:
    return {"reference": ref, "display": display} if isinstance(display, str) and display else {"reference": ref}


ops.register(ops.Operation("CarePlan", "$review-due", DEFINITION, scope=("CarePlan", "s"), type_level=operation,
                           methods=("GET", "POST")))
