"""Group/[id]/$schedule-sessions and Appointment/[id]/$record-attendance: Parameters in, a collection Bundle out.

Local operations (R4 has none for recurring sessions or a session's attendance); their OperationDefinitions are in
profiles/input/fsh/program-operations-sessions.fsh. Each request is one unit of work: all of it is stored, or nothing.
"""
from __future__ import annotations

import json
import re
from datetime import date

from flask import Response, request

from . import bundles, conformance, dates, interactions, ops, wire
from .db import get_db
from .errors import BadRequest
from .workflows import attendance, records, sessions

OD = f"{conformance.CANONICAL}/OperationDefinition"
MAX_WEEKS = 26
MAX_MARKS = 200
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


def schedule_sessions(group_id: str) -> Response:
    """POST Group/[id]/$schedule-sessions: start (date), weeks (integer), facilitator (Reference, optional)."""
    values = _single(_parameters("$schedule-sessions"), ("start", "weeks", "facilitator"))
    first, weeks = _start(values.get("start")), _weeks(values.get("weeks"))
    facilitator = _facilitator(values.get("facilitator"))
    made = interactions.run(get_db(), lambda unit: sessions.schedule_sessions(unit, group_id, first, weeks, facilitator),
                            _options())
    return _collection(made)


def record_attendance(appt_id: str) -> Response:
    """POST Appointment/[id]/$record-attendance: attendance (patient, state, start?, end?) per patient; topic?."""
    params = _parameters("$record-attendance")
    marks = _marks(params)
    topics = [p for p in params if p.get("name") == "topic"]
    if len(topics) > 1 or (topics and not isinstance(topics[0].get("valueCodeableConcept"), dict)):
        raise BadRequest("Parameter 'topic' is one valueCodeableConcept", expression="Parameters.parameter[topic]")
    topic = topics[0]["valueCodeableConcept"] if topics else None
    written = interactions.run(get_db(), lambda unit: attendance.record(unit, appt_id, marks, topic), _options())
    return _collection(written)


def _options() -> interactions.Options:
    from . import rest

    return rest.write_options()


def _collection(resources: list[dict]) -> Response:
    base = wire.base_url()
    entries = [bundles.entry(f"{base}/{r['resourceType']}/{r['id']}", json.dumps(r, ensure_ascii=False, separators=(",", ":")))
               for r in resources]
    return wire.respond(bundles.bundle("collection", entries, total=None))


# ------------------------------------------------------------------------------- input
def _parameters(name: str) -> list[dict]:
    body = wire.json_body(request)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest(f"{name} takes a Parameters resource", expression="Parameters")
    params = body.get("parameter", [])
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise BadRequest("Parameters.parameter must be a list of parameters", expression="Parameters.parameter")
    return params


def _single(params: list[dict], names: tuple[str, ...], where: str = "Parameters.parameter") -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i, p in enumerate(params):
        name = p.get("name")
        if name not in names or name in out:
            raise BadRequest(f"Unexpected or repeated parameter '{name}'", expression=f"{where}[{i}]")
        out[name] = p
    return out


def _start(param: dict | None) -> date:
    raw = (param or {}).get("valueDate")
    try:
        return date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else _missing("start", "valueDate")
    except ValueError:
        raise BadRequest(f"Parameter 'start' is not a date: {raw}", expression="Parameters.parameter[start]") from None


def _weeks(param: dict | None) -> int:
    value = (param or {}).get("valueInteger")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WEEKS:
        raise BadRequest(f"Parameter 'weeks' must be a valueInteger from 1 to {MAX_WEEKS}", expression="Parameters.parameter[weeks]")
    return value


def _facilitator(param: dict | None) -> dict | None:
    if param is None:
        return None
    parts = records.split(param.get("valueReference"))
    if parts is None or parts[0] not in ("Practitioner", "PractitionerRole"):
        raise BadRequest("Parameter 'facilitator' must reference a Practitioner or PractitionerRole",
                         expression="Parameters.parameter[facilitator]")
    return {"reference": f"{parts[0]}/{parts[1]}"}


def _missing(name: str, kind: str):
    raise BadRequest(f"Parameter '{name}' ({kind}) is required", code="required", expression=f"Parameters.parameter[{name}]")


def _marks(params: list[dict]) -> list[attendance.Mark]:
    marks: list[attendance.Mark] = []
    for i, p in enumerate(params):
        if p.get("name") == "attendance":
            marks.append(_mark(p, f"Parameters.parameter[{i}]"))
        elif p.get("name") != "topic":
            raise BadRequest(f"Unexpected parameter '{p.get('name')}'", expression=f"Parameters.parameter[{i}]")
    if not marks or len(marks) > MAX_MARKS:
        raise BadRequest(f"Give 1 to {MAX_MARKS} 'attendance' parameters, one per patient", code="required",
                         expression="Parameters.parameter[attendance]")
    seen = set()
    for m in marks:
        if m.patient in seen:
            raise BadRequest(f"{m.patient} is named twice", expression=f"{m.where}.part[patient]")
        seen.add(m.patient)
    return marks


def _mark(param: dict, where: str) -> attendance.Mark:
    given = param.get("part")
    if not isinstance(given, list) or not all(isinstance(p, dict) for p in given):
        raise BadRequest("An 'attendance' parameter has parts patient, state, start and end", expression=f"{where}.part")
    parts = _single(given, ("patient", "state", "start", "end"), f"{where}.part")
    ref = records.split((parts.get("patient") or {}).get("valueReference"))
    if ref is None or ref[0] != "Patient":
        raise BadRequest("Part 'patient' must be a valueReference to Patient/id", expression=f"{where}.part[patient]")
    state = (parts.get("state") or {}).get("valueCode")
    if state not in attendance.STATES:
        raise BadRequest(f"Part 'state' must be one of {', '.join(attendance.STATES)}", expression=f"{where}.part[state]")
    start, end = _time(parts, "start", where), _time(parts, "end", where)
    if state not in attendance.PRESENT and (start or end):
        raise BadRequest(f"A patient marked {state} was not there: send no start or end", expression=f"{where}.part[start]")
    if (state == "late" and not start) or (state == "left-early" and not end):
        which = "start" if state == "late" else "end"
        raise BadRequest(f"A patient marked {state} needs the actual {which}", code="required", expression=f"{where}.part[{which}]")
    return attendance.Mark(f"Patient/{ref[1]}", state, start, end, where)


def _time(parts: dict[str, dict], name: str, where: str) -> str | None:
    if name not in parts:
        return None
    raw = parts[name].get("valueDateTime")
    try:
        if isinstance(raw, str) and _DATETIME.match(raw):
            dates.parse_range(raw)
            return raw
    except ValueError:
        pass
    raise BadRequest(f"Part '{name}' must be a valueDateTime with a time and a zone", expression=f"{where}.part[{name}]")


ops.register(ops.Operation("Group", "$schedule-sessions", f"{OD}/Group-schedule-sessions", ("Appointment", "cu"),
                           instance_level=schedule_sessions, methods=("POST",)))
ops.register(ops.Operation("Appointment", "$record-attendance", f"{OD}/Appointment-record-attendance", ("Encounter", "cu"),
                           instance_level=record_attendance, methods=("POST",)))
