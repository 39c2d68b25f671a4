"""The program census: every active enrollment with this week's hours and flags, days since admission and the next
recertification, for one program or all: `EpisodeOfCare/$census`.

Computed on request from stored data in five queries whatever the number of episodes (active episodes, programs'
zones, birth dates, this week's attended Encounters, certifications): intensity.py for the week, certification.py
for the due dates. "This week" is the ISO week holding the census date (default today in each program's zone),
counted up to that date.
"""
from __future__ import annotations

import json
from datetime import date, timedelta

from flask import Response

from . import certification, intensity, level_of_care, ops, program_data, wire
from .conformance import CANONICAL
from .db import get_db


def operation() -> Response:
    """GET or POST EpisodeOfCare/$census[?organization=Organization/x][&date=YYYY-MM-DD]."""
    org, on = certification.worklist_input("$census")
    with get_db().read() as conn:
        episodes = program_data.active_episodes(conn, org)
        facts = program_data.facts(conn, episodes)
        today_of = certification.today_function(on, facts)
        visits = this_weeks_visits(conn, episodes, facts, today_of)
        dues = certification.dues(conn, episodes, today_of)
    rows = [row(e, visits[e["id"]], facts, today_of(e), dues.get(e["id"])) for e in episodes]
    body = {"resourceType": "Parameters", "parameter": [
        *([{"name": "date", "valueDate": on.isoformat()}] if on else []),
        *([{"name": "organization", "valueReference": {"reference": org}}] if org else []),
        {"name": "total", "valueInteger": len(episodes)},
        {"name": "readmissions", "valueInteger": sum(1 for e in episodes if level_of_care.readmission_of(e))},
        *({"name": "episode", "part": parts} for parts in rows)]}
    return wire.respond(json.dumps(body, separators=(",", ":")))


def this_weeks_visits(conn, episodes: list[dict], facts, today_of) -> dict[str, list[intensity.Visit]]:
    """Attended visits of each episode from the Monday of its census week to the census date, in one query."""
    if not episodes:
        return {}
    days = [today_of(e) for e in episodes]
    first = min(days) - timedelta(days=min(days).weekday())
    return intensity.facts_visits(conn, episodes, facts, first, max(days))


def row(episode: dict, visits: list[intensity.Visit], facts, today: date, due: certification.Due | None) -> list[dict]:
    """The parts of one episode's census line."""
    monday = today - timedelta(days=today.weekday())
    week = intensity.weeks(episode, visits, facts.birth(episode), monday, today)[0]
    admitted = (episode.get("period") or {}).get("start")
    level = level_of_care.current_level(episode)
    back = level_of_care.readmission_of(episode)
    return [
        *certification.episode_parts(episode),
        *([{"name": "levelOfCare", "valueCoding": {"system": level_of_care.LEVEL_SYSTEM, "code": level}}] if level else []),
        *([{"name": "admitted", "valueDate": admitted[:10]},
           {"name": "daysSinceAdmission", "valueInteger": (today - date.fromisoformat(admitted[:10])).days}]
          if isinstance(admitted, str) else []),
        *([{"name": "readmissionOf", "valueReference": {"reference": back}}] if back else []),
        {"name": "week", "valueString": week.label},
        {"name": "weekComplete", "valueBoolean": today.weekday() == 6},
        {"name": "hours", "valueDecimal": week.hours},
        {"name": "minimumHours", "valueDecimal": week.minimum},
        {"name": "daysAttended", "valueInteger": week.days},
        *({"name": "flag", "valueCode": f} for f in week.flags),
        *([{"name": "nextRecertification", "valueDate": due.due.isoformat()},
           {"name": "recertificationStatus", "valueCode": due.status}] if due else [])]


ops.register(ops.Operation("EpisodeOfCare", "$census", f"{CANONICAL}/OperationDefinition/EpisodeOfCare-census",
                           scope=(None, "rs"), type_level=operation, methods=("GET", "POST")))
