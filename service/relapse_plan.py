"""The relapse prevention plan as a discharge summary section: `section_for(conn_or_unit, patient_ref)`.

The plan is an iop-relapse-prevention-plan CarePlan (profiles/input/fsh/treatment-plans.fsh): one activity per item,
tagged with the relapse-prevention-component extension (trigger, warning-sign, coping-strategy, support-network,
crisis-step). Plans written before that profile keep their items inside the treatment plan (iop-careplan activities
with the same extension); those are used when the patient has no relapse prevention plan of its own. The section
always names the 988 Suicide & Crisis Lifeline, whether or not the plan lists it. docs/careplans.md.
"""
from __future__ import annotations

import html
import json
from typing import Any

from sqlalchemy import Connection

from . import conformance, search
from .workflows import records

PLANNING = f"{conformance.CANONICAL}/CodeSystem/iop-treatment-planning"
TREATMENT = f"{conformance.CANONICAL}/CodeSystem/iop-careplan-category"
COMPONENT = f"{conformance.CANONICAL}/StructureDefinition/relapse-prevention-component"
SECTION_CODE = records.coding(PLANNING, "relapse-prevention-plan", "Relapse prevention plan")
HEADINGS = (("trigger", "Triggers"), ("warning-sign", "Warning signs"), ("coping-strategy", "Coping strategies"),
            ("support-network", "Support network"), ("crisis-step", "Crisis contacts and steps"))
LIFELINE = "988 Suicide &amp; Crisis Lifeline: call or text 988, 24 hours a day (in danger: call 911)"
USABLE = ("active", "completed", "on-hold")  # a draft is not agreed yet; revoked or entered-in-error plans are not the plan


def section_for(conn_or_unit: Any, patient_ref: str) -> dict | None:
    """The Composition.section for the patient's relapse prevention plan, or None when the patient has none.

    `conn_or_unit` is a SQLAlchemy Connection or a Unit (its own writes are flushed first, so a plan written in the
    same unit is found). The section: title, code (iop-treatment-planning#relapse-prevention-plan), a generated
    narrative grouped by kind of item with the support network's and crisis contacts' phone numbers, and an entry
    referring to the CarePlan."""
    conn = _connection(conn_or_unit)
    plan, items = current_plan(conn, patient_ref)
    if plan is None:
        return None
    people = _performers(conn, items)
    return {"title": "Relapse prevention plan", "code": {"coding": [SECTION_CODE]},
            "text": {"status": "generated", "div": _div(items, people)},
            "entry": [{"reference": f"CarePlan/{plan['id']}"}]}


def discharge_section(conn_or_unit: Any, episode: dict) -> dict | None:
    """section_for() the patient of an enrollment (EpisodeOfCare), for the discharge summary."""
    patient = records.ref_text(episode.get("patient"))
    return section_for(conn_or_unit, patient) if patient else None


def current_plan(conn: Connection, patient_ref: str) -> tuple[dict | None, list[dict]]:
    """(the CarePlan holding the plan, its relapse prevention items): the latest usable relapse prevention plan, else
    the latest usable treatment plan that has relapse prevention items."""
    for category in (f"{PLANNING}|relapse-prevention-plan", f"{TREATMENT}|iop-treatment-plan"):
        rows = search.find(conn, "CarePlan", f"subject={patient_ref}&category={category}", limit=50)
        plans = sorted((json.loads(r.content) for r in rows), key=_updated, reverse=True)
        for plan in plans:
            items = [a for a in plan.get("activity", []) if kind_of(a)]
            if plan.get("status") in USABLE and items:
                return plan, items
    return None, []


def kind_of(activity: dict) -> str | None:
    """The relapse prevention component of a CarePlan activity (trigger, warning-sign, ...), None for other activities."""
    for ext in activity.get("extension", []):
        if isinstance(ext, dict) and ext.get("url") == COMPONENT:
            return next((c for s, c in records.codes(ext.get("valueCodeableConcept")) if s.endswith("iop-relapse-prevention")), None)
    return None


def _connection(conn_or_unit: Any) -> Connection:
    if hasattr(conn_or_unit, "flush") and hasattr(conn_or_unit, "conn"):
        conn_or_unit.flush()
        return conn_or_unit.conn
    return conn_or_unit


def _updated(plan: dict) -> str:
    return str((plan.get("meta") or {}).get("lastUpdated", ""))


def _performers(conn: Connection, items: list[dict]) -> dict[str, dict]:
    """The support network and crisis contacts the items name, in one query: 'Type/id' -> resource."""
    refs = {parts for a in items for p in a.get("detail", {}).get("performer", []) if (parts := records.split(p))}
    return {f"{row.type}/{row.id}": json.loads(row.content) for row in search.fetch(conn, sorted(refs))}


def _div(items: list[dict], people: dict[str, dict]) -> str:
    parts = ['<div xmlns="http://www.w3.org/1999/xhtml">']
    for kind, heading in HEADINGS:
        lines = [_line(a, people) for a in items if kind_of(a) == kind]
        if kind == "crisis-step" and not any("988" in line for line in lines):
            lines.append(LIFELINE)
        if lines:
            parts.append(f"<p><b>{heading}</b></p><ul>{''.join(f'<li>{line}</li>' for line in lines)}</ul>")
    return "".join(parts) + "</div>"


def _line(activity: dict, people: dict[str, dict]) -> str:
    """One item in words (escaped): its description, what it answers, and who to call with their phone numbers."""
    detail = activity.get("detail", {})
    text = html.escape(detail.get("description") or (detail.get("code") or {}).get("text") or "")
    reasons = [str(r["text"]) for r in detail.get("reasonCode", []) if isinstance(r, dict) and r.get("text")]
    if reasons and not any(r in (detail.get("description") or "") for r in reasons):
        text += f" (when: {html.escape('; '.join(reasons))})"
    for performer in detail.get("performer", []):
        contact = _contact(people.get(records.ref_text(performer) or ""), performer)
        if contact:
            text += f" - {html.escape(contact)}"
    return text


def _contact(doc: dict | None, performer: dict) -> str | None:
    """Name and phone numbers of a support person or crisis line (not of the patient)."""
    if doc is None or doc.get("resourceType") == "Patient":
        return None
    phones = [t["value"] for t in doc.get("telecom", []) if isinstance(t, dict) and t.get("system") in ("phone", "sms") and t.get("value")]
    name = doc.get("name") if isinstance(doc.get("name"), str) else _human_name(doc.get("name")) or performer.get("display")
    return ", ".join(x for x in [name, *dict.fromkeys(phones)] if x) or None


def _human_name(names: object) -> str | None:
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        return None
    return " ".join([*names[0].get("given", []), names[0].get("family", "")]).strip() or names[0].get("text")
