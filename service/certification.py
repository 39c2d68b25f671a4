"""Physician certification that a patient needs intensive outpatient services (at least 9 hours a week), and the
recertification due at least every 60 days (Medicare IOP, 42 CFR 424.24(d); domain brief §4.2):
`EpisodeOfCare/$recertification-due`.

A certification is a DocumentReference (profile iop-certification): the signed statement itself (content), dated
(`date`), signed by the physician who is its `authenticator`, for the enrollment (`context.encounter` →
EpisodeOfCare) and the period it covers (`context.period`), with a Provenance carrying the signature. A document
is the standard home of a signed attestation (Consent is for a patient's choices, Observation for measurements);
R4 DocumentReference has no signature element, hence the Provenance. Only final, current, authenticated documents
count. Due dates are computed on every request from the latest one: 60 days after it, or on admission when there
is none yet.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

from flask import Response

from . import dates, level_of_care, op_input, ops, program_data, wire
from .conformance import CANONICAL
from .db import get_db

SYSTEM = f"{CANONICAL}/CodeSystem/iop-certification"
CODES = ("certification", "recertification")
EVERY = timedelta(days=60)
SOON = timedelta(days=7)


@dataclass(frozen=True)
class Due:
    """When an episode's next (re)certification is due, and how that stands on `today`."""

    last: date | None
    due: date
    today: date

    @property
    def status(self) -> str:
        """overdue | due (within 7 days) | current."""
        if self.due < self.today:
            return "overdue"
        return "due" if self.due - self.today <= SOON else "current"


def signed_on(document: dict) -> date | None:
    """The day a certification counts from: final, authenticated and dated; None otherwise."""
    stamp = document.get("date")
    if document.get("docStatus") != "final" or not isinstance(document.get("authenticator"), dict) or not isinstance(stamp, str):
        return None
    return date.fromisoformat(stamp[:10])


def due(episode: dict, documents: list[dict], today: date) -> Due:
    signed = [d for doc in documents if (d := signed_on(doc)) and d <= today]  # as things stood on that day
    if signed:
        return Due(max(signed), max(signed) + EVERY, today)
    admitted = (episode.get("period") or {}).get("start")
    return Due(None, date.fromisoformat(admitted[:10]) if isinstance(admitted, str) else today, today)


def dues(conn, episodes: list[dict], today_of) -> dict[str, Due]:
    """Due of each episode at an intensive outpatient level ('id' -> Due; the certification is for IOP services, so
    an episode stepped down to outpatient care has none), `today_of(episode)` giving the day to judge it on."""
    certified = [e for e in episodes if level_of_care.is_iop(level_of_care.current_level(e))]
    docs = program_data.documents(conn, [e["id"] for e in certified], SYSTEM, CODES)
    return {e["id"]: due(e, docs.get(e["id"], []), today_of(e)) for e in certified}


def due_parts(d: Due) -> list[dict]:
    return [*([{"name": "lastCertification", "valueDate": d.last.isoformat()}] if d.last else []),
            {"name": "due", "valueDate": d.due.isoformat()},
            {"name": "daysUntilDue", "valueInteger": (d.due - d.today).days},
            {"name": "status", "valueCode": d.status}]


# ------------------------------------------------------------------------------- HTTP
PARAMETERS = ("date", "organization")


def worklist_input(operation: str) -> tuple[str | None, date | None]:
    """The input of the staff worklists ($recertification-due, $census): organization (Organization/id) and date,
    both optional; outside organizations' clients are refused."""
    op_input.staff_only(operation)
    given = op_input.read(operation, PARAMETERS)
    return given.reference("organization", ("Organization",)), given.day("date")


def today_function(on: date | None, facts: program_data.Facts):
    """The day to judge each episode on: the date given, else today in its program's zone."""
    if on is not None:
        return lambda episode: on
    now = dates.utcnow()
    return lambda episode: now.astimezone(facts.zone(episode)).date()


def operation() -> Response:
    """GET or POST EpisodeOfCare/$recertification-due[?organization=Organization/x][&date=YYYY-MM-DD]."""
    org, on = worklist_input("$recertification-due")
    with get_db().read() as conn:
        episodes = program_data.active_episodes(conn, org)
        facts = program_data.facts(conn, episodes)
        today_of = today_function(on, facts)
        found = dues(conn, episodes, today_of)
    worklist = sorted(((e, found[e["id"]]) for e in episodes if e["id"] in found and found[e["id"]].status != "current"),
                      key=lambda pair: (pair[1].due, pair[0]["id"]))
    body = {"resourceType": "Parameters", "parameter": [
        *([{"name": "date", "valueDate": on.isoformat()}] if on else []),
        {"name": "total", "valueInteger": len(worklist)},
        *({"name": "recertification", "part": [*episode_parts(e), *due_parts(d)]} for e, d in worklist)]}
    return wire.respond(json.dumps(body, separators=(",", ":")))


def episode_parts(episode: dict) -> list[dict]:
    out = [{"name": "episode", "valueReference": {"reference": f"EpisodeOfCare/{episode['id']}"}}]
    for name, key in (("patient", "patient"), ("organization", "managingOrganization")):
        if isinstance(episode.get(key), dict) and "reference" in episode[key]:
            out.append({"name": name, "valueReference": {"reference": episode[key]["reference"]}})
    return out


ops.register(ops.Operation("EpisodeOfCare", "$recertification-due",
                           f"{CANONICAL}/OperationDefinition/EpisodeOfCare-recertification-due",
                           scope=(None, "rs"), type_level=operation, methods=("GET", "POST")))
