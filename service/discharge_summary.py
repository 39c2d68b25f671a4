"""The discharge summary of an enrollment, built from what is stored: an iop-discharge-summary Composition.

Sections (LOINC, after the PACIO Transitions of Care list, domain brief §1.6): reason for referral (42349-1),
problems (11450-4), the latest assessment scores (30954-2), the medications of the discharge reconciliation
(10160-0), the plan of care (18776-5: care plans, goals, aftercare referrals), the relapse prevention plan (the
section service/relapse_plan.py offers, when it is there) and the support contacts with the crisis steps
(69730-0 Instructions). `EpisodeOfCare/[id]/$discharge-summary` writes it on request; discharge (the enrollment
becoming finished) writes it when none exists (workflows/followup.py), in the discharge's own transaction, so the
referral Task's outputs and the hand-off to aftercare providers (workflows/aftercare.py) carry it.
"""
from __future__ import annotations

import html
import json

from flask import Response

from . import conformance, dates, interactions, ops, privacy, reconciliation, rest, wire
from .db import get_db
from .errors import Forbidden, NotFound
from .interactions import Unit
from .op_input import read
from .workflows import records

DEFINITION = f"{conformance.CANONICAL}/OperationDefinition/EpisodeOfCare-discharge-summary"
PROFILE = "iop-discharge-summary"
DOCUMENT_SID = f"{records.SID}/document"
LOINC = "http://loinc.org"
SCORES = (("44261-6", "PHQ-9"), ("70274-6", "GAD-7"), ("75626-2", "AUDIT-C"), ("101698-9", "PCL-5"), ("93374-7", "C-SSRS risk"))
CRISIS = "In a crisis call or text 988 (Suicide and Crisis Lifeline)."


# ------------------------------------------------------------------------------- HTTP
def operation(rid: str) -> Response:
    """POST EpisodeOfCare/[id]/$discharge-summary [author]: builds, stores and returns the Composition."""
    if privacy.is_outside():
        raise Forbidden("$discharge-summary is for the program's staff")
    author = read("$discharge-summary", ("author",)).reference("author", ("Practitioner", "PractitionerRole"))
    stored = interactions.run(get_db(), lambda unit: write(unit, _episode(unit, rid), author), rest.write_options())
    return wire.respond(stored.content)


def _episode(unit: Unit, rid: str) -> dict:
    episode = records.parsed(unit.current("EpisodeOfCare", rid))
    if episode is None:
        raise NotFound(f"EpisodeOfCare/{rid} is not known")
    return episode


def identifier(episode: dict) -> dict:
    return {"system": DOCUMENT_SID, "value": f"DS-{episode['id']}"}


def write(unit: Unit, episode: dict, author: str | None = None):
    """Store the enrollment's summary (a new version when it exists); returns the stored version."""
    body = build(unit, episode, author)
    ident = identifier(episode)
    return interactions.conditional_update(unit, "Composition", f"identifier={ident['system']}|{ident['value']}", body).stored


def existing(unit: Unit, episode: dict) -> bool:
    """Whether the enrollment has a discharge summary (ours or one written by staff, event.detail = the enrollment)."""
    patient = records.ref_text(episode.get("patient"))
    rows = unit.find("Composition", f"subject={patient}&type={LOINC}|18842-5", limit=50) if patient else []
    target = f"EpisodeOfCare/{episode['id']}"
    return any(target in {records.ref_text(d) for e in json.loads(r.content).get("event", []) for d in e.get("detail", [])}
               for r in rows)


# ------------------------------------------------------------------------------- the Composition
def build(unit: Unit, episode: dict, author: str | None = None) -> dict:
    """The iop-discharge-summary Composition of an enrollment, from what is stored now."""
    if author:
        records.require(unit, {"reference": author}, "Parameters.parameter[author]")
    else:  # written at discharge: the care manager, else the program (never a reason to refuse the discharge)
        manager = records.ref_text(episode.get("careManager"))
        author = manager if manager and records.read(unit, {"reference": manager}) else records.ref_text(episode["managingOrganization"])
    patient = records.read(unit, episode.get("patient")) or {}
    period = episode.get("period") or {}
    sections = [s for s in (reason_for_referral(unit, episode), problems(unit, episode), results(unit, episode),
                            medications(unit, episode), plan_of_care(unit, episode), relapse_prevention(unit, episode),
                            support_contacts(unit, episode, patient)) if s]
    labels = records.part2_labels(episode)
    body = {"resourceType": "Composition", "meta": records.meta(PROFILE, episode),
            "text": _text(f"IOP discharge summary, {_name(patient)}, {period.get('start', '?')} to {period.get('end', 'ongoing')}."),
            "identifier": identifier(episode), "status": "final" if episode.get("status") == "finished" else "preliminary",
            "type": {"coding": [records.coding(LOINC, "18842-5", "Discharge summary")]},
            "category": [{"coding": [records.coding("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                                                    "clinical-note", "Clinical Note")]}],
            "subject": episode["patient"], "date": dates.instant(unit.now), "author": [{"reference": author}],
            "title": "IOP discharge summary", "custodian": episode["managingOrganization"],
            "event": [{**({"period": period} if period else {}), "detail": [{"reference": f"EpisodeOfCare/{episode['id']}"}]}],
            "section": sections}
    if labels:
        body["confidentiality"] = "R"
    return body


def section(title: str, code: str, display: str, lines: list[str], entries: list[str]) -> dict:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines) or "<li>None recorded.</li>"
    out: dict = {"title": title, "code": {"coding": [records.coding(LOINC, code, display)]},
                 "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><ul>{items}</ul></div>'}}
    if entries:
        out["entry"] = [{"reference": ref} for ref in dict.fromkeys(entries)]
    return out


def reason_for_referral(unit: Unit, episode: dict) -> dict:
    refs = [r for r in (records.ref_text(x) for x in episode.get("referralRequest", [])) if r]
    lines = []
    for ref in refs:
        sr = records.read(unit, {"reference": ref}) or {}
        lines += [c.get("text") or _concept(c) for c in sr.get("reasonCode", [])]
    period = episode.get("period") or {}
    attended, scheduled = attendance(unit, episode)
    lines.append(f"Enrolled {period.get('start', '?')} to {period.get('end', 'ongoing')}; attended {attended} of {scheduled} "
                 "recorded sessions.")
    return section("Reason for referral and course", "42349-1", "Reason for referral (narrative)", lines,
                   refs + [f"EpisodeOfCare/{episode['id']}"])


def attendance(unit: Unit, episode: dict) -> tuple[int, int]:
    """(attended, scheduled) sessions of the enrollment: finished vs finished or cancelled per-patient Encounters."""
    rows = unit.find("Encounter", f"episode-of-care=EpisodeOfCare/{episode['id']}&status=finished,cancelled", limit=2000)
    encounters = [json.loads(r.content) for r in rows]
    counted = [e for e in encounters if "session-cancelled" not in records.extension_codes(e, "attendance-status")]
    return sum(e.get("status") == "finished" for e in counted), len(counted)


def problems(unit: Unit, episode: dict) -> dict | None:
    refs = [r for r in (records.ref_text(d.get("condition")) for d in episode.get("diagnosis", [])) if r]
    for sr_ref in episode.get("referralRequest", []):
        refs += [r for r in (records.ref_text(x) for x in (records.read(unit, sr_ref) or {}).get("reasonReference", [])) if r]
    refs = [r for r in dict.fromkeys(refs) if r.startswith("Condition/")]
    found = records.read_many(unit, [("", {"reference": r}) for r in refs])
    lines = [_concept(found[r].get("code") or {}) for r in refs if r in found]
    return section("Problems", "11450-4", "Problem list - Reported", lines, [r for r in refs if r in found]) if lines else None


def results(unit: Unit, episode: dict) -> dict | None:
    """First and latest score of each instrument within the enrollment; the entries are the latest Observations."""
    patient, since = records.ref_text(episode.get("patient")), ((episode.get("period") or {}).get("start") or "1900")[:10]
    lines, entries = [], []
    for code, name in SCORES:
        rows = unit.find("Observation", f"subject={patient}&code={LOINC}|{code}&status=final,amended,corrected&date=ge{since}",
                         limit=200)
        scored = sorted((_effective(o), o) for o in (json.loads(r.content) for r in rows) if _effective(o))
        if scored:
            first, last = scored[0][1], scored[-1][1]
            trend = f"{_value(first)} on {scored[0][0][:10]} to " if len(scored) > 1 else ""
            lines.append(f"{name}: {trend}{_value(last)} on {scored[-1][0][:10]}")
            entries.append(f"Observation/{last['id']}")
    return section("Assessment results", "30954-2", "Relevant diagnostic tests/laboratory data Narrative", lines, entries) \
        if lines else None


def medications(unit: Unit, episode: dict) -> dict:
    """The discharge reconciliation's medications with their decisions (or the live orders when none was recorded)."""
    rows = unit.find("List", f"identifier={reconciliation.SID}|{episode['id']}-discharge", limit=1)
    if rows:
        listing = json.loads(rows[0].content)
        entries = [e["item"]["reference"] for e in listing.get("entry", [])]
        lines = [f"{e['item'].get('display', e['item']['reference'])}: {e['flag']['coding'][0]['display'].lower()}"
                 for e in listing.get("entry", [])]
        lines.append(f"Reconciled by {listing['source']['reference']} on {listing['date']} (List/{listing['id']}).")
    else:
        patient = records.ref_text(episode.get("patient"))
        orders = [json.loads(r.content) for r in unit.find("MedicationRequest", f"subject={patient}&status=active,on-hold", limit=100)]
        entries = [f"MedicationRequest/{o['id']}" for o in orders]
        lines = [reconciliation.medication_name(o) for o in orders] + ["Medications at discharge were not reconciled."]
    return section("Medications at discharge", "10160-0", "History of Medication use Narrative", lines, entries)


def plan_of_care(unit: Unit, episode: dict) -> dict:
    patient, since = records.ref_text(episode.get("patient")), ((episode.get("period") or {}).get("start") or "1900")[:10]
    plans = [json.loads(r.content) for r in unit.find("CarePlan", f"subject={patient}&status=active,completed,on-hold", limit=20)]
    goals = [json.loads(r.content) for r in unit.find("Goal", f"subject={patient}", limit=50)]
    aftercare = [json.loads(r.content) for r in unit.find(
        "ServiceRequest", f"subject={patient}&_profile={records.SD}/iop-aftercare-referral&authored=ge{since}", limit=20)]
    lines = [f"Care plan: {p.get('title') or p.get('description') or p['id']} ({p.get('status')})" for p in plans]
    lines += [f"Goal: {(g.get('description') or {}).get('text') or _concept(g.get('description') or {})} "
              f"({_concept(g.get('achievementStatus') or {}) or g.get('lifecycleStatus')})" for g in goals]
    lines += [f"Aftercare: {(s.get('code') or {}).get('text') or _concept(s.get('code') or {})}"
              f"{' with ' + s['performer'][0].get('display', '') if s.get('performer') else ''}" for s in aftercare]
    entries = [f"CarePlan/{p['id']}" for p in plans] + [f"Goal/{g['id']}" for g in goals] + [f"ServiceRequest/{s['id']}" for s in aftercare]
    return section("Plan of care and aftercare", "18776-5", "Plan of care note", lines, entries)


def relapse_prevention(unit: Unit, episode: dict) -> dict | None:
    """The relapse prevention plan section that service/relapse_plan.py (issue 10 part B) offers, when it is there."""
    try:
        from . import relapse_plan  # type: ignore[attr-defined]
    except ImportError:
        return None
    offer = getattr(relapse_plan, "discharge_section", None)
    return offer(unit, episode) if callable(offer) else None


def support_contacts(unit: Unit, episode: dict, patient: dict) -> dict:
    """The people the patient named (RelatedPerson), the program to call back, and the crisis line."""
    pid = records.ref_text(episode.get("patient"))
    people = [json.loads(r.content) for r in unit.find("RelatedPerson", f"patient={pid}", limit=20)] if pid else []
    lines = [f"{_name(p)} ({', '.join(_concept(r) for r in p.get('relationship', [])) or 'support'})"
             f"{': ' + ', '.join(t['value'] for t in p.get('telecom', []) if t.get('value')) if p.get('telecom') else ''}"
             for p in people]
    org = records.read(unit, episode.get("managingOrganization")) or {}
    phone = next((t["value"] for t in org.get("telecom", []) if t.get("system") == "phone"), None)
    lines += [f"{org.get('name', 'The program')}{' at ' + phone if phone else ''} to discuss re-entry after a lapse.", CRISIS]
    entries = [f"RelatedPerson/{p['id']}" for p in people] + [records.ref_text(episode["managingOrganization"]) or ""]
    return section("Support contacts and crisis steps", "69730-0", "Instructions", lines, [e for e in entries if e])


# ------------------------------------------------------------------------------- small helpers
def _text(summary: str) -> dict:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{html.escape(summary)}</p></div>'}


def _concept(concept: dict) -> str:
    return concept.get("text") or next((c.get("display") or c.get("code") for c in concept.get("coding", [])), "") or ""


def _name(resource: dict) -> str:
    for name in resource.get("name", []):
        return name.get("text") or " ".join(name.get("given", []) + [name.get("family", "")]).strip()
    return "the patient"


def _effective(obs: dict) -> str | None:
    return obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start") or obs.get("issued")


def _value(obs: dict) -> str:
    if "valueInteger" in obs:
        return str(obs["valueInteger"])
    if "valueQuantity" in obs:
        return f"{obs['valueQuantity'].get('value')}"
    return _concept(obs.get("valueCodeableConcept") or {}) or "?"


ops.register(ops.Operation("EpisodeOfCare", "$discharge-summary", DEFINITION, scope=("Composition", "cu"),
                           instance_level=operation, methods=("POST",)))
