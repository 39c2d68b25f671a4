"""Scoring: a completed QuestionnaireResponse for one of our instruments becomes its result Observation.

In the transaction that stores the response (docs/outcome-measures.md): its answers are checked against the
instrument's Questionnaire (service/instruments: 422 naming the item for a missing or foreign answer), it is tied to
the patient's episode (episodes.py), scored into one Observation claiming the instrument's profile (total or risk
level in value[x], severity band in interpretation, derivedFrom the response), and a positive safety item raises the
alert (safety.py). A later version of the response (amended) rewrites the same Observation (found by identifier),
never a second one; entered-in-error takes its Observation with it.
"""
from __future__ import annotations

import json

from .. import dates, instruments, interactions
from ..interactions import Change, Unit
from . import episodes, lookups, records, safety, trigger

RESULT_ID = f"{records.SID}/questionnaire-result"  # identifier of the result Observation: the response's id
US_CORE_SCREENING = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-screening-assessment"
SURVEY = {"coding": [records.coding("http://terminology.hl7.org/CodeSystem/observation-category", "survey", "Survey")]}
PERFORMERS = ("Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization", "CareTeam")
SCORED = ("completed", "amended")


@trigger("QuestionnaireResponse")
def on_response(unit: Unit, change: Change) -> None:
    response = records.parsed(change.stored)
    instrument = instruments.by_canonical(response.get("questionnaire")) if response else None
    if instrument is None:
        return
    existing = _existing(unit, response["id"], change)
    if response.get("status") == "entered-in-error":
        _withdraw(unit, existing)
        return
    if response.get("status") not in SCORED:
        return
    given = instruments.answers(instrument, response)
    episode = episodes.of_response(unit, response)
    sex = _sex(unit, response) if instrument.rules.needs_sex else None
    result = instrument.rules.score(given, sex)
    observation = _observation(unit, response, episode, result, existing)
    stored = interactions.create(unit, observation) if existing is None else records.save(unit, observation)
    if result.alert:
        safety.alert(unit, response, episode, stored.stored, result, fresh=change.previous is None)


def _existing(unit: Unit, response_id: str, change: Change) -> dict | None:
    """The response's result Observation, if an earlier version was scored (none can exist for a new response)."""
    if change.previous is None:
        return None
    rows = unit.find("Observation", f"identifier={RESULT_ID}|{response_id}", limit=1)
    return json.loads(rows[0].content) if rows else None


def _withdraw(unit: Unit, existing: dict | None) -> None:
    if existing is not None and existing.get("status") != "entered-in-error":
        records.save(unit, dict(existing, status="entered-in-error"))


def _sex(unit: Unit, response: dict) -> str | None:
    patient = lookups.read(unit, response["subject"])
    return patient.get("gender") if patient else None


def _observation(unit: Unit, response: dict, episode: dict, result: instruments.Result, existing: dict | None) -> dict:
    meta = records.meta(result.profile, response)
    meta["profile"].append(US_CORE_SCREENING)
    obs: dict = {
        "resourceType": "Observation", "meta": meta,
        "extension": [{"url": episodes.EPISODE_EXTENSION, "valueReference": {"reference": f"EpisodeOfCare/{episode['id']}"}}],
        "identifier": [{"system": RESULT_ID, "value": response["id"]}],
        "status": "final" if existing is None else "amended",
        "category": [SURVEY], "code": {"coding": [records.coding(*result.code)]},
        "subject": {"reference": records.ref_text(response["subject"])},
        "effectiveDateTime": response.get("authored") or dates.instant(unit.now),
        "issued": dates.instant(unit.now),
    }
    if existing is not None:
        obs["id"] = existing["id"]
    if records.ref_text(response.get("encounter")):
        obs["encounter"] = {"reference": records.ref_text(response["encounter"])}
    performer = _performer(response)
    if performer:
        obs["performer"] = [performer]
    obs["valueInteger" if isinstance(result.value, int) else "valueCodeableConcept"] = result.value
    obs["interpretation"] = result.interpretation
    obs["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{response['id']}"}]
    return obs


def _performer(response: dict) -> dict | None:
    """Who answered: the response's source, else its author, when Observation.performer may name it."""
    for name in ("source", "author"):
        text = records.ref_text(response.get(name))
        if text and text.split("/")[0] in PERFORMERS:
            return {"reference": text}
    return None
