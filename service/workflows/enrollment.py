"""Enrollment (EpisodeOfCare) derived from a referral: created on acceptance, active at the first session,
and the outputs that close the referral loop at discharge (Gravity TaskForReferralManagement outputs)."""
from __future__ import annotations

import json

from .. import interactions
from ..errors import Unprocessable
from ..interactions import Unit
from . import eligibility, programs, records

ENROLLMENT = "iop-enrollment"
UCUM = "http://unitsofmeasure.org"
LOC = f"{records.CS}/level-of-care"
DISCHARGE_SUMMARY = ("http://loinc.org", "18842-5")


def find(unit: Unit, sr_ref: str) -> dict | None:
    rows = unit.find("EpisodeOfCare", f"incoming-referral={sr_ref}", limit=1)
    return json.loads(rows[0].content) if rows else None


def ensure(unit: Unit, task: dict, sr: dict, status: str | None = None) -> dict:
    """The referral's enrollment: the one that exists, or a new one (planned with a free seat, else waitlist)."""
    existing = find(unit, f"ServiceRequest/{sr['id']}")
    if existing is not None:
        return existing
    org = programs.organization_of(unit, task.get("owner"))
    if org is None:
        raise Unprocessable("The referral Task's owner has no Organization to manage the enrollment", expression="Task.owner")
    fit = eligibility.assess(unit, task, sr)
    episode = _episode(unit, sr, org, fit, status or ("planned" if fit.seat_free else "waitlist"))
    return json.loads(interactions.create(unit, episode).stored.content or "{}")


def _episode(unit: Unit, sr: dict, org: dict, fit: eligibility.Assessment, status: str) -> dict:
    schedule = fit.schedule or "day"
    extension = [
        {"url": f"{records.SD}/level-of-care", "valueCodeableConcept": _level_of_care(sr)},
        {"url": f"{records.SD}/target-hours-per-week",
         "valueQuantity": {"value": 6 if fit.adolescent else 9, "unit": "h", "system": UCUM, "code": "h"}},
        {"url": f"{records.SD}/schedule-track", "valueCodeableConcept": {"coding": [
            records.coding(f"{records.CS}/iop-schedule-track", schedule, schedule.capitalize() + " track")]}},
    ]
    extension += [e for e in sr.get("extension", []) if e.get("url") == f"{records.SD}/specialized-track"]
    return {"resourceType": "EpisodeOfCare", "meta": records.meta(ENROLLMENT, sr), "extension": extension,
            "status": status, "patient": sr["subject"], "managingOrganization": org,
            "period": {"start": _start(unit, sr)}, "referralRequest": [{"reference": f"ServiceRequest/{sr['id']}"}]}


def _level_of_care(sr: dict) -> dict:
    for value in records.extension_values(sr, "requested-level-of-care"):
        return value
    return {"coding": [records.coding(LOC, "asam-2.1", "ASAM Level 2.1 Intensive Outpatient Services")]}


def _start(unit: Unit, sr: dict) -> str:
    start = sr.get("occurrenceDateTime") or (sr.get("occurrencePeriod") or {}).get("start")
    return (start or unit.now.date().isoformat())[:10]


def activate(unit: Unit, episode: dict, encounter: dict) -> None:
    """Admission: the first attended session makes a planned or waitlisted enrollment active."""
    start = ((encounter.get("period") or {}).get("start") or unit.now.date().isoformat())[:10]
    episode["status"] = "active"
    episode.setdefault("period", {})["start"] = min(episode.get("period", {}).get("start") or start, start)
    if not episode.get("careManager"):
        manager = _practitioner(encounter)
        if manager is None:
            raise Unprocessable(f"EpisodeOfCare/{episode['id']} becomes active with this first session but has no care "
                                "manager; set EpisodeOfCare.careManager or name the practitioner in Encounter.participant",
                                code="business-rule", expression="EpisodeOfCare.careManager")
        episode["careManager"] = manager
    records.save(unit, episode)


def _practitioner(encounter: dict) -> dict | None:
    for participant in encounter.get("participant", []):
        ref = records.ref_text(participant.get("individual"))
        if ref and ref.split("/")[0] in ("Practitioner", "PractitionerRole"):
            return {"reference": ref}
    return None


def outputs(unit: Unit, episode: dict, task: dict) -> list[dict]:
    """Task.output at discharge: the enrollment, the discharge summary, the care plan and aftercare referrals."""
    from .referral import ADDITIONAL, RESULTING

    out = list(task.get("output", []))
    seen = {records.ref_text(o.get("valueReference")) for o in out}
    refs = [(RESULTING, f"EpisodeOfCare/{episode['id']}")] + [(ADDITIONAL, r) for r in _discharge_content(unit, episode)]
    for (system, code), ref in refs:
        if ref not in seen:
            display = "Resulting Activity" if code == "resulting-activity" else "Additional Content"
            out.append({"type": {"coding": [records.coding(system, code, display)]}, "valueReference": {"reference": ref}})
    return out


def _discharge_content(unit: Unit, episode: dict) -> list[str]:
    """The patient's discharge summaries, care plans and aftercare referrals written during the episode."""
    patient = records.ref_text(episode.get("patient"))
    if patient is None:
        return []
    since = (episode.get("period") or {}).get("start", "")[:10]
    found = []
    since = f"ge{since}" if since else "ge1900"
    queries = (("Composition", f"subject={patient}&type={'|'.join(DISCHARGE_SUMMARY)}&date={since}"),
               ("DocumentReference", f"subject={patient}&type={'|'.join(DISCHARGE_SUMMARY)}&date={since}"),
               ("CarePlan", f"subject={patient}&date={since}"),
               ("ServiceRequest", f"subject={patient}&_profile={records.SD}/iop-aftercare-referral&authored={since}"))
    for rtype, query in queries:
        found.extend(f"{rtype}/{row.id}" for row in unit.find(rtype, query, limit=20))
    return found
