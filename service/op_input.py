"""Input of an operation: query parameters (GET) or a Parameters body (POST), checked against what it accepts.

See: https://hl7.org/fhir/R4/operations.html#request (a GET takes simple values as query parameters; a POST
takes a Parameters resource). Errors are 400 OperationOutcomes naming the parameter, in one place.
"""
from __future__ import annotations

import re
from datetime import date

from flask import request

from . import wire
from .errors import BadRequest

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
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

    def day(self, name: str, default: date) -> date:
        text = self.text(name, "valueDate")
        if text is None:
            return default
        if not _DATE.match(text):
            raise BadRequest(f"Parameter '{name}' must be a date YYYY-MM-DD, not '{text}'", expression=self.where(name))
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise BadRequest(f"'{text}' is not a calendar date", expression=self.where(name)) from None

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


def linked(conn, rtype: str, param: str, target_type: str, ids: list[str], chunk: int = 500) -> list[dict]:
    """Current `rtype` resources whose reference parameter `param` names one of `ids` (of `target_type`), in one
    indexed query per chunk: sp_reference joined to resource, as referral_metrics.intake_appointments does (a search
    with a long comma list of references and other criteria plans badly on PostgreSQL)."""
    import json

    from sqlalchemy import false, select

    from .tables import resource, sp_reference

    ref, R, out, wanted = sp_reference, resource, [], sorted(set(ids))
    for start in range(0, len(wanted), chunk):
        keys = select(ref.c.resource_pk).where(ref.c.type == rtype, ref.c.name == param, ref.c.target_type == target_type,
                                               ref.c.target_id.in_(wanted[start:start + chunk])).distinct()
        rows = conn.execute(select(R.c.content).where(R.c.pk.in_(keys), R.c.deleted == false())).all()
        out += [json.loads(row.content) for row in rows]
    return out
