"""Input of an operation: query parameters (GET) or a Parameters body (POST), checked against what it accepts.

See: https://hl7.org/fhir/R4/operations.html#request (a GET takes simple values as query parameters; a POST
takes a Parameters resource). Errors are 400 OperationOutcomes naming the parameter, in one place; every
operation of ours reads its input here.
"""
from __future__ import annotations

import re
from datetime import date
from typing import overload

from flask import request

from . import privacy, wire
from .errors import BadRequest, Forbidden

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_REF = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


class Input:
    """The parameters given, by name (each a list of Parameters.parameter dicts), and where each is in the request."""

    def __init__(self, op: str, params: dict[str, list[dict]], body: bool):
        self.op, self.params, self.body = op, params, body

    def where(self, name: str, index: int | None = None) -> str:
        if not self.body:
            return name
        return f"Parameters.parameter[{name}]" + (f"[{index}]" if index is not None else "")

    def one(self, name: str) -> dict | None:
        found = self.params.get(name, [])
        if len(found) > 1:
            raise BadRequest(f"Parameter '{name}' of {self.op} is repeated; give it once", expression=self.where(name))
        return found[0] if found else None

    def text(self, name: str, *keys: str) -> str | None:
        """A simple value (valueString, valueCode, ... or the query string's text)."""
        p = self.one(name)
        if p is None:
            return None
        for key in keys + ("valueString",):
            if isinstance(p.get(key), str):
                return p[key]
        raise BadRequest(f"Parameter '{name}' of {self.op} needs a {' or '.join(keys)}", expression=self.where(name))

    def reference(self, name: str, types: tuple[str, ...] = ()) -> str | None:
        """A relative reference 'Type/id' (valueReference, or the text of a GET parameter)."""
        p = self.one(name)
        if p is None:
            return None
        return check_reference(p.get("valueReference", {}).get("reference") if isinstance(p.get("valueReference"), dict)
                               else p.get("valueString"), types, self.op, self.where(name))

    @overload
    def day(self, name: str, default: date) -> date: ...

    @overload
    def day(self, name: str, default: None = None) -> date | None: ...

    def day(self, name: str, default: date | None = None) -> date | None:
        """A FHIR date (YYYY-MM-DD), `default` when not given."""
        text = self.text(name, "valueDate")
        if text is None:
            return default
        if not _DATE.match(text):
            raise BadRequest(f"Parameter '{name}' must be a date YYYY-MM-DD, not '{text}'", expression=self.where(name))
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise BadRequest(f"'{text}' is not a calendar date", expression=self.where(name)) from None

    def week(self, name: str) -> date | None:
        """The Monday of an ISO week written YYYY-Www (e.g. 2026-W47), None when not given."""
        text = self.text(name, "valueCode")
        if text is None:
            return None
        m = _WEEK.match(text)
        try:
            if m:
                return date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        except ValueError:
            pass
        raise BadRequest(f"Parameter '{name}' must be an ISO week (YYYY-Www, e.g. 2026-W47), not '{text}'",
                         expression=self.where(name))

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        p = self.one(name)
        raw = None if p is None else p.get("valueInteger", p.get("valueString"))
        if raw is None:
            return default
        try:
            value = int(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            value = None
        if value is None or not low <= value <= high:
            raise BadRequest(f"Parameter '{name}' must be a whole number from {low} to {high}", expression=self.where(name))
        return value


def staff_only(operation: str) -> None:
    """The program's own staff tools ($hours, $census, $recertification-due): they sum attendance of patients whose
    records may be 42 CFR Part 2 labelled, with no per-patient consent check, so an outside organization's client is
    refused (403)."""
    if privacy.is_outside():
        raise Forbidden(f"{operation} is for the program's own staff tools", code="forbidden")


def check_reference(ref: object, types: tuple[str, ...], op: str, where: str) -> str:
    if not isinstance(ref, str) or not _REF.match(ref) or (types and ref.split("/")[0] not in types):
        kinds = " or ".join(types) or "a resource"
        raise BadRequest(f"{op}: '{ref}' is not a reference to {kinds} on this server (Type/id)", expression=where)
    return ref


def read(op: str, accepted: tuple[str, ...]) -> Input:
    """The request's parameters; an unknown one is a 400."""
    if request.method == "GET":
        params: dict[str, list[dict]] = {}
        for key in request.args:
            if key in ("_format", "_pretty"):
                continue
            params[key] = [{"name": key, "valueString": v} for v in request.args.getlist(key)]
        found = Input(op, params, False)
    else:
        found = from_body(op, wire.json_body(request))
    unknown = [k for k in found.params if k not in accepted]
    if unknown:
        raise BadRequest(f"Unknown parameter '{unknown[0]}' for {op}; it takes {', '.join(accepted)}",
                         expression=found.where(unknown[0]))
    return found


def from_body(op: str, body: object) -> Input:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest(f"{op} takes a Parameters resource", expression="Parameters")
    raw = body.get("parameter", [])
    if not isinstance(raw, list):
        raise BadRequest("Parameters.parameter must be a list", expression="Parameters.parameter")
    params: dict[str, list[dict]] = {}
    for p in raw:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise BadRequest("Every parameter needs a name", expression="Parameters.parameter")
        params.setdefault(p["name"], []).append(p)
    return Input(op, params, True)


def parts(param: dict) -> dict[str, list[dict]]:
    """The parts of a parameter, by name."""
    out: dict[str, list[dict]] = {}
    for p in param.get("part", []) if isinstance(param.get("part"), list) else []:
        if isinstance(p, dict) and isinstance(p.get("name"), str):
            out.setdefault(p["name"], []).append(p)
    return out

