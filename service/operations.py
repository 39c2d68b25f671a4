"""FHIR operations: $validate (type and instance level) and Patient/$everything (paged).

See: https://hl7.org/fhir/R4/resource-operation-validate.html and
https://hl7.org/fhir/R4/patient-operation-everything.html
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

from flask import Response, current_app, request
from sqlalchemy import Connection, and_, false, or_, select

from . import (
    bundles,
    conformance,
    history,
    interactions,
    messaging,
    ops,
    privacy,
    repository,
    scopes,
    search,
    terminology_ops,
    validation,
    wire,
)
from .db import get_db
from .definitions import tables
from .errors import BadRequest, Issue, MethodNotAllowed, NotFound, outcome
from .tables import resource, sp_reference

OPERATIONS = {"validate": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
              "everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
              "expand": "http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
              "process-message": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
              "triage": f"{conformance.CANONICAL}/OperationDefinition/Task-triage",
              "decide": f"{conformance.CANONICAL}/OperationDefinition/Task-decide",
              "referral-metrics": f"{conformance.CANONICAL}/OperationDefinition/Task-referral-metrics"}


def system(name: str) -> Response:
    """Operations on the base: POST $process-message (messaging.py), and registered ones (service/ops)."""
    if name == "$process-message":
        return messaging.operation()
    if (op := _registered(None, name, "type_level")) is not None:
        return op.type_level()
    raise NotFound(f"Operation {name} is not supported at the system level", code="not-supported")


def type_level(rtype: str, name: str) -> Response:
    """Operations on a type: POST $validate; GET or POST ValueSet/$expand and Task/$referral-metrics."""
    if name == "$validate" and request.method == "POST":
        return _validate(rtype, *_validate_input(rtype), None)
    if name == "$expand" and rtype == "ValueSet":
        return terminology_ops.expand(None)
    if name == "$referral-metrics" and rtype == "Task":
        from . import referral_metrics
        return referral_metrics.operation()
    if (op := _registered(rtype, name, "type_level")) is not None:
        return op.type_level()
    raise NotFound(f"Operation {name} is not supported on {rtype}", code="not-supported")


def instance_level(rtype: str, rid: str, name: str) -> Response:
    if name == "$validate":
        if request.method == "POST":
            return _validate(rtype, *_validate_input(rtype), rid)
        return _validate(rtype, None, request.args.get("mode", "update"), request.args.get("profile"), rid)
    if name == "$everything" and rtype == "Patient":
        return everything(rid)
    if name == "$expand" and rtype == "ValueSet":
        return terminology_ops.expand(rid)
    if rtype == "Task" and name in ("$triage", "$decide"):
        return referral_operation(rid, name)
    if rtype == "Subscription" and name == "$status":
        from . import subscription_ops
        return subscription_ops.status(rid)
    if (op := _registered(rtype, name, "instance_level")) is not None:
        return op.instance_level(rid)
    raise NotFound(f"Operation {name} is not supported on {rtype}/{rid}", code="not-supported")


def _registered(rtype: str | None, name: str, level: str) -> ops.Operation | None:
    """The registered operation for this URL, None when there is none at this level; 405 for a wrong method."""
    op = ops.find(rtype, name)
    if op is None or getattr(op, level) is None:
        return None
    if request.method not in op.methods:
        raise MethodNotAllowed(f"{name} takes {' or '.join(op.methods)}", code="not-supported")
    return op


def referral_operation(rid: str, name: str) -> Response:
    """Task/{id}/$triage (propose a decision) and $decide (record the staff decision): docs/referrals.md."""
    from . import rest
    from .workflows import triage

    if request.method != "POST":
        raise BadRequest(f"{name} changes the referral; use POST", code="not-supported")
    if name == "$triage":
        result = interactions.run(get_db(), lambda unit: triage.triage(unit, rid), rest.write_options())
    else:
        decision = triage.parse_decision(wire.json_body(request))
        result = interactions.run(get_db(), lambda unit: triage.decide(unit, rid, decision), rest.write_options())
    return wire.respond(json.dumps(result, ensure_ascii=False, separators=(",", ":")))


# ------------------------------------------------------------------------------- $validate
def _validate_input(rtype: str) -> tuple[dict | None, str, str | None]:
    """(resource, mode, profile) from a resource body or a Parameters body (and the query string)."""
    body = wire.json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("$validate takes a resource or a Parameters resource", code="structure")
    mode, profile = request.args.get("mode", "no-action"), request.args.get("profile")
    if body.get("resourceType") != "Parameters" or rtype == "Parameters":
        return body, mode, profile
    params = {p.get("name"): p for p in body.get("parameter", []) if isinstance(p, dict)}
    mode = (params.get("mode") or {}).get("valueCode", mode)
    given = params.get("profile") or {}
    profile = given.get("valueUri") or given.get("valueCanonical") or profile
    resource_ = (params.get("resource") or {}).get("resource")
    if resource_ is not None and not isinstance(resource_, dict):
        raise BadRequest("The resource parameter must hold a resource", code="structure", expression="Parameters.parameter")
    return resource_, mode if isinstance(mode, str) else "", profile if isinstance(profile, str) else None


def _validate(rtype: str, resource_: dict | None, mode: str, profile: str | None, rid: str | None) -> Response:
    if mode not in ("no-action", "create", "update", "delete"):
        raise BadRequest(f"Unknown $validate mode '{mode}'", expression="mode")
    profiles = _profiles(rtype, profile)
    if rid is not None and (mode == "delete" or resource_ is None):
        with get_db().read() as conn:
            stored = repository.current(conn, rtype, rid)
        if stored is None or stored.deleted:
            raise NotFound(f"{rtype}/{rid} is not known")
        resource_ = resource_ or json.loads(stored.content or "{}")
    if resource_ is None:
        raise BadRequest("$validate needs a resource", code="required")
    issues = _check(rtype, resource_, mode, rid, profiles)
    if not any(i.severity in ("error", "fatal") for i in issues):
        issues = issues + [Issue("information", "informational", "Validation successful: no errors")]
    # R4: the operation returns 200 whether or not the resource is valid (resource-operation-validate)
    return wire.respond(json.dumps(outcome(issues)))


def _profiles(rtype: str, profile: str | None) -> list[str]:
    """The profile asked for, as a list of ours (empty for the base type); 400 for a profile we do not know."""
    if not profile or profile.split("|")[0] == f"http://hl7.org/fhir/StructureDefinition/{rtype}":
        return []
    url = profile.split("|")[0]
    known = conformance.registry().profiles.get(url)
    if known is None or known.type != rtype:
        raise BadRequest(f"'{profile}' is not a profile on {rtype} that this server knows", code="not-supported", expression="profile")
    return [url]


def _check(rtype: str, resource_: dict, mode: str, rid: str | None, profiles: list[str]) -> list[Issue]:
    if resource_.get("resourceType") != rtype:
        return [Issue("error", "invalid", f"Expected a {rtype}, got {resource_.get('resourceType')}", "resourceType")]
    issues = []
    if mode == "update" and rid is not None and resource_.get("id") != rid:
        issues.append(Issue("error", "invalid", f"The id must be {rid} for an update", f"{rtype}.id"))
    if mode == "create" and resource_.get("id"):
        issues.append(Issue("warning", "informational", "A create ignores the id in the resource", f"{rtype}.id"))
    if mode == "delete":
        return issues
    base = validation.validate(resource_, current_app.config["IOP"]["MAX_JSON_DEPTH"])
    if base:  # profiles are checked on resources that are valid R4
        return issues + base
    claimed = interactions.profile_issues(resource_, current_app.extensions["iop.required_profiles"])
    explicit = conformance.registry().validate(resource_, [p for p in profiles if p not in conformance.registry().claimed(resource_)])
    return issues + claimed + explicit


# ------------------------------------------------------------------------------- $everything
def everything(pid: str) -> Response:
    """The Patient and every resource in its compartment, paged by _count, filtered by _type and _since."""
    args, base, s = request.args, wire.base_url(), current_app.config["IOP"]
    count = min(wire.int_param("_count", args.get("_count"), default=s["PAGE_SIZE"]) or 1, s["MAX_PAGE_SIZE"])
    types = [t for t in args.get("_type", "").split(",") if t]
    unknown = [t for t in types if t not in tables().resource_types]
    if unknown:
        raise BadRequest(f"Unknown resource type '{unknown[0]}' in _type", expression="_type")
    types = scopes.readable_types(types, tables().resource_types)  # only the types the client may read
    since = history.parse_since(args.get("_since"))
    after = wire.int_param("_cursor", args.get("_cursor"))
    with get_db().read() as conn:
        patient = repository.current(conn, "Patient", pid)
        if patient is None or patient.deleted:
            raise NotFound(f"Patient/{pid} is not known")
        privacy.check_read(conn, patient)  # 404 / 403 for an outside client, as a read
        head = [_patient_row(patient)] if after is None and _selected(patient, types, since) else []
        rows = head + _compartment_page(conn, patient.pk, pid, types, since, after, max(count, 1) - len(head))
        more = len(rows) > count
        rows, last = rows[:count], rows[count - 1] if more else None  # the cursor is taken before screening
        shown = privacy.Screened()
        kept = privacy.screen(conn, rows, shown)
    entries = [bundles.entry(f"{base}/{r.type}/{r.id}", r.content, search_mode="match") for r in kept]
    if shown.issues():
        entries.append(bundles.entry(None, json.dumps(outcome(shown.issues())), search_mode="outcome"))
    keep = [(k, v) for k, v in args.items(multi=True) if k in ("_count", "_type", "_since", "_format")]
    url = f"{base}/Patient/{pid}/$everything"
    links = [("self", f"{url}?{urlencode(keep + ([('_cursor', str(after))] if after is not None else []))}".rstrip("?"))]
    if more and last is not None:
        links.append(("next", f"{url}?{urlencode(keep + [('_cursor', str(last.pk))])}"))
    return wire.respond(shown.mark(bundles.bundle("searchset", entries, links=links)))


def _patient_row(patient: repository.Stored) -> search.Row:
    """The Patient as the first entry; its cursor 0 makes the next page start at the first member."""
    return search.Row(0, patient.type, patient.id, patient.content or "{}")


def _selected(patient: repository.Stored, types: list[str], since) -> bool:
    return (not types or "Patient" in types) and (since is None or patient.last_updated >= since)


def _compartment_page(conn: Connection, patient_pk: int, pid: str, types: list[str], since, after: int | None,
                      count: int) -> list[search.Row]:
    """Compartment members other than the Patient, ordered by storage key, after the cursor (count + 1 rows)."""
    ref, R = sp_reference, resource
    # not the audit trail (AuditEvents about the patient): it is searched as AuditEvent?patient=, not part of the record
    links = or_(*[and_(ref.c.type == rtype, ref.c.name.in_(params)) for rtype, params in tables().patient_compartment.items()
                  if rtype != "AuditEvent"])
    members = select(ref.c.resource_pk).where(ref.c.target_type == "Patient", ref.c.target_id == pid, links)
    stmt = select(R.c.pk, R.c.type, R.c.id, R.c.content).where(R.c.pk.in_(members), R.c.pk != patient_pk, R.c.deleted == false())
    if types:
        stmt = stmt.where(R.c.type.in_(types))
    if since:
        stmt = stmt.where(R.c.last_updated >= since)
    if after is not None:
        stmt = stmt.where(R.c.pk > after)
    rows = conn.execute(stmt.order_by(R.c.pk).limit(count + 1)).all()
    return [search.Row(*r) for r in rows]
