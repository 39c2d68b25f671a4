"""PlanDefinition/{id}/$apply: an IOP care plan template applied to one patient gives a DRAFT treatment plan.

The R4 operation (https://hl7.org/fhir/R4/plandefinition-operation-apply.html) returns a CarePlan and stores
nothing; the template's goals become contained Goals. With `persist=true` (POST only; our addition, declared in
OperationDefinition/PlanDefinition-apply whose `base` is the R4 one) the Goals and the CarePlan are stored in one
transaction, the Goals as resources of their own so that outcome scores can move their achievement status.
Staff then tailor the draft with ordinary updates (docs/careplans.md).
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Response, request
from sqlalchemy import Connection

from . import conformance, dates, interactions, ops, privacy, repository, search, wire
from .db import get_db
from .errors import BadRequest, Forbidden, NotFound, Unprocessable
from .workflows import records

SD = f"{conformance.CANONICAL}/StructureDefinition"
US_CORE_CAREPLAN = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-careplan"
US_CORE_GOAL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-goal"
ASSESS_PLAN = records.coding("http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "assess-plan",
                             "Assessment and Plan of Treatment")
TREATMENT_PLAN = records.coding(f"{records.CS}/iop-careplan-category", "iop-treatment-plan", "IOP treatment plan")
ACTIVITY_KINDS = ("Appointment", "CommunicationRequest", "DeviceRequest", "MedicationRequest", "NutritionOrder", "Task",
                  "ServiceRequest", "VisionPrescription")  # CarePlan.activity.detail.kind (required binding)
DUE_DAYS = {"d": 1, "wk": 7}
WEEKS_PER = {"h": 1 / 168, "d": 1 / 7, "wk": 1, "mo": 12 / 52, "a": 1 / 52}  # periods per week, for hours/week
HOURS = {"min": 1 / 60, "h": 1, "d": 24}
AUTHORS = ("Practitioner", "PractitionerRole")
USED = ("subject", "practitioner", "encounter", "periodStart", "persist")
IGNORED = ("organization", "userType", "userLanguage", "userTaskContext", "setting", "settingContext")  # R4 inputs we do not use


@dataclass(frozen=True)
class Inputs:
    """The $apply parameters this server honours."""

    subject: str  # Patient/id
    practitioner: str | None
    encounter: str | None
    start: date | None
    persist: bool


# ------------------------------------------------------------------------------- HTTP
def operation(plan_id: str) -> Response:
    """GET or POST PlanDefinition/{id}/$apply?subject=Patient/{id}."""
    if privacy.is_outside():
        raise Forbidden("$apply is for the program's own staff tools", code="forbidden")
    inputs = parse_inputs()
    if not inputs.persist:
        with get_db().read() as conn:
            plan = build(conn, plan_id, inputs, dates.utcnow())
        return wire.respond(_dump(plan))
    from . import rest
    result = interactions.run(get_db(), lambda unit: store(unit, build(_flushed(unit), plan_id, inputs, unit.now)),
                              rest.write_options())
    headers = wire.version_headers(result.stored, wire.base_url(), location=True)
    return wire.respond(result.stored.content, 201, headers)


def _flushed(unit: interactions.Unit) -> Connection:
    unit.flush()
    return unit.conn


def _dump(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def parse_inputs() -> Inputs:
    """The parameters from the query string (GET) or a Parameters body (POST)."""
    values: dict[str, object] = {k: v for k, v in request.args.items() if not k.startswith("_")}
    if request.method == "POST":
        body = wire.json_body(request)
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise BadRequest("$apply takes a Parameters resource", expression="Parameters")
        for param in body.get("parameter", []):
            if isinstance(param, dict) and isinstance(param.get("name"), str):
                if param["name"] in values:
                    raise BadRequest(f"Parameter '{param['name']}' is given twice (this server applies a template to one "
                                     "patient at a time)", expression=param["name"])
                values[param["name"]] = _value(param)
    elif "persist" in values:
        raise BadRequest("persist=true stores the plan: use POST", expression="persist")
    unknown = sorted(set(values) - set(USED) - set(IGNORED))
    if unknown:
        raise BadRequest(f"Unknown parameter '{unknown[0]}' ({', '.join(USED)})", expression=unknown[0])
    return Inputs(_reference(values, "subject", ("Patient",), required=True) or "",
                  _reference(values, "practitioner", AUTHORS), _reference(values, "encounter", ("Encounter",)),
                  _start(values.get("periodStart")), _flag(values.get("persist")))


def _value(param: dict) -> object:
    for key, value in param.items():
        if key.startswith("value"):
            return value.get("reference") if key == "valueReference" and isinstance(value, dict) else value
    return None


def _reference(values: dict, name: str, types: tuple[str, ...], required: bool = False) -> str | None:
    raw = values.get(name)
    if raw is None and not required:
        return None
    parts = records.split({"reference": raw}) if isinstance(raw, str) else None
    if parts is None or parts[0] not in types or "/_history/" in str(raw):
        kinds = " or ".join(f"'{t}/{{id}}'" for t in types)
        raise BadRequest(f"Parameter '{name}' must be {kinds} (this server applies a template to one patient)"
                         if raw is not None else f"Parameter '{name}' is required: {kinds}", expression=name)
    return f"{parts[0]}/{parts[1]}"


def _start(raw: object) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else _bad_start(raw)
    except ValueError:
        return _bad_start(raw)


def _bad_start(raw: object) -> date:
    raise BadRequest(f"Parameter 'periodStart' must be a date (YYYY-MM-DD), not {raw!r}", expression="periodStart")


def _flag(raw: object) -> bool:
    if raw in (None, False, "false"):
        return False
    if raw in (True, "true"):
        return True
    raise BadRequest("Parameter 'persist' must be true or false", expression="persist")


# ------------------------------------------------------------------------------- the draft plan
def build(conn: Connection, plan_id: str, inputs: Inputs, now: datetime) -> dict:
    """The draft CarePlan (Goals contained) for the template PlanDefinition/{plan_id} and the patient."""
    template = _template(conn, plan_id)
    activities = _activity_definitions(conn, template)
    patient = _require(conn, inputs.subject, "subject")
    for name in ("practitioner", "encounter"):
        if getattr(inputs, name):
            _require(conn, getattr(inputs, name), name)
    start = inputs.start or now.date()
    conditions = _conditions(conn, inputs.subject)
    goals = [_goal(g, i, inputs.subject, start, conditions) for i, g in enumerate(template["goal"])]
    plan = _careplan(template, inputs, start, now, goals, conditions)
    plan["contributor"] = _contributors(conn, inputs, patient)
    plan["careTeam"] = _care_teams(conn, inputs.subject)
    plan["activity"] = [_activity(action, activities[i], i) for i, action in enumerate(template["action"])]
    hours = _hours_per_week(plan["activity"])
    if hours:
        plan["extension"] = [{"url": f"{SD}/target-hours-per-week",
                              "valueQuantity": {"value": hours, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}]
    plan["text"] = _narrative(plan, goals, patient)
    return {k: v for k, v in plan.items() if v not in (None, [])}


def _template(conn: Connection, plan_id: str) -> dict:
    stored = repository.current(conn, "PlanDefinition", plan_id)
    template = records.parsed(stored)
    if template is None:
        raise NotFound(f"PlanDefinition/{plan_id} is not known")
    if template.get("status") != "active":
        raise Unprocessable(f"PlanDefinition/{plan_id} is '{template.get('status')}'; only an active template can be applied",
                            code="business-rule", expression="PlanDefinition.status")
    for i, goal in enumerate(template.get("goal") or []):
        if not goal.get("id") or not goal.get("target"):
            raise Unprocessable(f"Goal {i} of the template needs an id and a measurable target", code="business-rule",
                                expression=f"PlanDefinition.goal[{i}]")
    if not template.get("goal") or not template.get("action"):
        raise Unprocessable("A care plan template needs goals and actions (iop-careplan-template)", code="business-rule",
                            expression="PlanDefinition.action" if template.get("goal") else "PlanDefinition.goal")
    return template


def _activity_definitions(conn: Connection, template: dict) -> list[dict]:
    """The ActivityDefinition of each action (by canonical URL, one query); 422 naming the action otherwise."""
    urls = [(a.get("definitionCanonical") or "").split("|")[0] for a in template["action"]]
    found: dict[str, dict] = {}
    wanted = sorted({u for u in urls if u})
    if wanted:
        for row in search.find(conn, "ActivityDefinition", "url=" + ",".join(wanted), limit=len(wanted) * 4):
            doc = json.loads(row.content)
            if doc.get("status") == "active" or doc.get("url") not in found:
                found[doc.get("url")] = doc
    out = []
    for i, url in enumerate(urls):
        where = f"PlanDefinition.action[{i}].definitionCanonical"
        doc = found.get(url)
        if doc is None:
            raise Unprocessable(f"Action {i} of the template names ActivityDefinition '{url}', which is not on this server",
                                code="not-found", expression=where)
        if doc.get("status") != "active" or not _repeat(doc.get("timingTiming")):
            raise Unprocessable(f"ActivityDefinition '{url}' must be active and have a frequency (timingTiming.repeat)",
                                code="business-rule", expression=where)
        out.append(doc)
    return out


def _repeat(timing: object) -> dict | None:
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    ok = isinstance(repeat, dict) and all(repeat.get(k) for k in ("frequency", "period", "periodUnit"))
    return repeat if ok else None


def _require(conn: Connection, ref: str, name: str) -> dict:
    rtype, rid = ref.split("/")
    doc = records.parsed(repository.current(conn, rtype, rid))
    if doc is None:
        raise Unprocessable(f"Parameter '{name}' refers to '{ref}', which is not on this server", code="not-found", expression=name)
    return doc


def _conditions(conn: Connection, patient: str) -> list[dict]:
    rows = search.find(conn, "Condition", f"subject={patient}", limit=100)
    active = [json.loads(r.content) for r in rows]
    active = [c for c in active if ("http://terminology.hl7.org/CodeSystem/condition-clinical", "active") in
              records.codes(c.get("clinicalStatus")) or not c.get("clinicalStatus")]
    if not active:
        raise Unprocessable(f"{patient} has no active Condition for the plan to address (iop-careplan: addresses 1..*); "
                            "record the diagnoses first", code="business-rule", expression="subject")
    return active


def _goal(goal: dict, index: int, patient: str, start: date, conditions: list[dict]) -> dict:
    """A proposed Goal (iop-goal) from a template goal; target due dates count from the plan's start."""
    targets = [_target(t, start, f"PlanDefinition.goal[{index}].target[{j}]") for j, t in enumerate(goal["target"])]
    wanted = {c for concept in goal.get("addresses", []) for c in records.codes(concept)}
    addresses = [{"reference": f"Condition/{c['id']}"} for c in conditions if wanted & records.codes(c.get("code"))]
    return {k: v for k, v in {
        "resourceType": "Goal", "id": f"goal-{goal['id']}", "meta": {"profile": [f"{SD}/iop-goal", US_CORE_GOAL]},
        "lifecycleStatus": "proposed", "category": [goal["category"]] if goal.get("category") else [],
        "description": goal.get("description") or {"text": goal["id"]}, "subject": {"reference": patient},
        "startDate": start.isoformat(), "target": targets, "addresses": addresses}.items() if v not in (None, [])}


def _target(target: dict, start: date, where: str) -> dict:
    due: dict = target["due"] if isinstance(target.get("due"), dict) else {}
    unit = due.get("code") or due.get("unit")
    if not target.get("measure") or not isinstance(due.get("value"), (int, float)) or unit not in (*DUE_DAYS, "mo"):
        raise Unprocessable("A template goal target needs a measure and a due Duration in d, wk or mo", code="business-rule",
                            expression=where)
    days = due["value"] * DUE_DAYS[unit] if unit in DUE_DAYS else due["value"] * 30
    out = {k: v for k, v in target.items() if k.startswith("detail") or k == "measure"}
    out["dueDate"] = (start + timedelta(days=int(days))).isoformat()
    return out


def _careplan(template: dict, inputs: Inputs, start: date, now: datetime, goals: list[dict], conditions: list[dict]) -> dict:
    end = max(t["dueDate"] for g in goals for t in g["target"])
    labels = {json.dumps(label, sort_keys=True) for c in conditions for label in records.part2_labels(c)}
    meta: dict = {"profile": [f"{SD}/iop-careplan", US_CORE_CAREPLAN]}
    if labels:
        meta["security"] = [json.loads(label) for label in sorted(labels)]
    canonical = template.get("url") or f"PlanDefinition/{template['id']}"
    return {"resourceType": "CarePlan", "meta": meta, "contained": goals,
            "instantiatesCanonical": [f"{canonical}|{template['version']}" if template.get("version") else canonical],
            "status": "draft", "intent": "plan", "category": [{"coding": [ASSESS_PLAN]}, {"coding": [TREATMENT_PLAN]}],
            "title": template.get("title") or "IOP treatment plan", "description": template.get("description"),
            "subject": {"reference": inputs.subject},
            "encounter": {"reference": inputs.encounter} if inputs.encounter else None,
            "period": {"start": start.isoformat(), "end": end}, "created": dates.instant(now),
            "author": {"reference": inputs.practitioner} if inputs.practitioner else None,
            "addresses": [{"reference": f"Condition/{c['id']}"} for c in conditions],
            "goal": [{"reference": f"#{g['id']}"} for g in goals]}


def _contributors(conn: Connection, inputs: Inputs, patient: dict) -> list[dict]:
    """The patient (iop-9), the writing clinician and the patient's active RelatedPersons (family, sponsor)."""
    out = [{"reference": inputs.subject}]
    if inputs.practitioner:
        out.append({"reference": inputs.practitioner})
    for row in search.find(conn, "RelatedPerson", f"patient={inputs.subject}", limit=20):
        if json.loads(row.content).get("active", True):
            out.append({"reference": f"RelatedPerson/{row.id}"})
    return out


def _care_teams(conn: Connection, patient: str) -> list[dict]:
    rows = search.find(conn, "CareTeam", f"subject={patient}&status=active", limit=5)
    return [{"reference": f"CareTeam/{row.id}"} for row in rows]


def _activity(action: dict, definition: dict, index: int) -> dict:
    """One activity per template action: the ActivityDefinition's code, kind and frequency (the action's timing wins)."""
    timing = action.get("timingTiming") if _repeat(action.get("timingTiming")) else definition["timingTiming"]
    detail = {"kind": definition.get("kind") if definition.get("kind") in ACTIVITY_KINDS else None,
              "instantiatesCanonical": [definition["url"]], "code": definition.get("code") or (action.get("code") or [None])[0],
              "status": "not-started", "scheduledTiming": timing,
              "goal": [{"reference": f"#goal-{gid}"} for gid in action.get("goalId", [])],
              "description": definition.get("description") or action.get("title")}
    if not detail["code"]:
        raise Unprocessable("The activity has no code", code="business-rule", expression=f"PlanDefinition.action[{index}]")
    return {"detail": {k: v for k, v in detail.items() if v not in (None, [])}}


def _hours_per_week(activities: list[dict]) -> float | None:
    """Planned hours of services per week: sessions per week × session length, over the activities that say both."""
    total = 0.0
    for activity in activities:
        repeat = activity["detail"]["scheduledTiming"]["repeat"]
        if repeat.get("duration") and repeat.get("durationUnit") in HOURS and repeat["periodUnit"] in WEEKS_PER:
            per_week = repeat["frequency"] / repeat["period"] * WEEKS_PER[repeat["periodUnit"]]
            total += per_week * repeat["duration"] * HOURS[repeat["durationUnit"]]
    return round(total, 1) if total else None


def _narrative(plan: dict, goals: list[dict], patient: dict) -> dict:
    """US Core: a narrative summary of the plan (text.status generated)."""
    esc = html.escape
    names = patient.get("name") or [{}]
    who = " ".join([*names[0].get("given", []), names[0].get("family", "")]).strip() or plan["subject"]["reference"]
    items = "".join(f"<li>{esc(a['detail'].get('code', {}).get('text') or a['detail'].get('description', ''))}: "
                    f"{esc(_timing_text(a['detail']['scheduledTiming']['repeat']))}</li>" for a in plan["activity"])
    aims = "".join(f"<li>{esc(g['description'].get('text') or '')} (by {esc(g['target'][0]['dueDate'])})</li>" for g in goals)
    div = (f"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p><b>{esc(plan['title'])}</b> for {esc(who)} (DRAFT, from "
           f"{esc(plan['period']['start'])})</p><p>Activities:</p><ul>{items}</ul><p>Goals:</p><ul>{aims}</ul></div>")
    return {"status": "generated", "div": div}


def _timing_text(repeat: dict) -> str:
    text = f"{repeat['frequency']} per {'' if repeat['period'] == 1 else str(repeat['period']) + ' '}{repeat['periodUnit']}"
    return text + (f", {repeat['duration']} {repeat['durationUnit']}" if repeat.get("duration") else "")


# ------------------------------------------------------------------------------- persist=true
def store(unit: interactions.Unit, plan: dict) -> interactions.Result:
    """Store the contained Goals as Goals and the CarePlan pointing at them, in the caller's unit."""
    plan = json.loads(json.dumps(plan))
    ids = {}
    for goal in plan.pop("contained", []):
        local = goal.pop("id")
        ids[f"#{local}"] = f"Goal/{interactions.create(unit, goal).stored.id}"
    plan["goal"] = [{"reference": ids[g["reference"]]} for g in plan["goal"]]
    for activity in plan["activity"]:
        for ref in activity["detail"].get("goal", []):
            ref["reference"] = ids[ref["reference"]]
    return interactions.create(unit, plan)


ops.register(ops.Operation("PlanDefinition", "$apply", f"{conformance.CANONICAL}/OperationDefinition/PlanDefinition-apply",
                           scope=("CarePlan", "c"), instance_level=operation, methods=("GET", "POST")))
