"""The inputs of the read-only program operations ($hours, $census, $recertification-due): query parameters on GET,
or a Parameters body on POST, each given at most once; a wrong one is a 400 naming it.

See: https://hl7.org/fhir/R4/operations.html#request
"""
from __future__ import annotations

import re
from datetime import date

from flask import request

from . import privacy, wire
from .errors import BadRequest, Forbidden

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
VALUE_KEYS = ("valueString", "valueDate", "valueCode", "valueId")
CONTROLS = ("_format", "_pretty")


def staff_only(operation: str) -> None:
    """The program's own staff tools: they sum attendance of patients whose records may be 42 CFR Part 2 labelled,
    with no per-patient consent check, so an outside organization's client is refused (403)."""
    if privacy.is_outside():
        raise Forbidden(f"{operation} is for the program's own staff tools", code="forbidden")


def read(operation: str, names: tuple[str, ...]) -> dict[str, str]:
    """{name: value as text} of the operation's inputs."""
    if request.method == "GET":
        extra = [k for k in request.args if k not in names and k not in CONTROLS]
        if extra:
            raise BadRequest(f"Unknown parameter '{extra[0]}' for {operation}", expression=extra[0])
        doubled = [k for k in names if len(request.args.getlist(k)) > 1]
        if doubled:
            raise BadRequest(f"Parameter '{doubled[0]}' is repeated; give it once", expression=doubled[0])
        return {k: request.args[k] for k in names if k in request.args}
    return _from_parameters(operation, names, wire.json_body(request))


def _from_parameters(operation: str, names: tuple[str, ...], body: object) -> dict[str, str]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest(f"{operation} takes a Parameters resource (or use GET)", expression="Parameters")
    given = body.get("parameter", [])
    out: dict[str, str] = {}
    for i, p in enumerate(given if isinstance(given, list) else []):
        name = p.get("name") if isinstance(p, dict) else None
        if name not in names or name in out:
            raise BadRequest(f"Unexpected or repeated parameter '{name}' for {operation}", expression=f"Parameters.parameter[{i}]")
        ref = p.get("valueReference")
        value = next((p[k] for k in VALUE_KEYS if k in p), ref.get("reference") if isinstance(ref, dict) else None)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"Parameter '{name}' needs a value", expression=f"Parameters.parameter[{i}]")
        out[name] = value
    return out


def day(text: str, name: str) -> date:
    """A FHIR date (YYYY-MM-DD)."""
    try:
        if _DAY.match(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise BadRequest(f"Parameter '{name}' must be a date (YYYY-MM-DD), not '{text}'", expression=name)


def iso_week(text: str, name: str) -> date:
    """The Monday of an ISO week written YYYY-Www (e.g. 2026-W47)."""
    m = _WEEK.match(text)
    try:
        if m:
            return date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError:
        pass
    raise BadRequest(f"Parameter '{name}' must be an ISO week (YYYY-Www, e.g. 2026-W47), not '{text}'", expression=name)
