"""Which treatment episode a QuestionnaireResponse belongs to (docs/outcome-measures.md, "Linking a response").

In order: the R4 extension workflow-episodeOfCare on the response (valueReference EpisodeOfCare/<id>); else its
`encounter`, whose Encounter.episodeOfCare names the episode; else the patient's one active EpisodeOfCare. The
episode must be the response subject's: a response for another patient's episode is a 422 naming the reference.
"""
from __future__ import annotations

from ..errors import Unprocessable
from ..interactions import Unit
from . import lookups, records

EPISODE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"


def named(resource: dict) -> tuple[int, dict] | None:
    """(index, reference) of the workflow-episodeOfCare extension of a resource, else None."""
    for i, ext in enumerate(resource.get("extension", [])):
        if isinstance(ext, dict) and ext.get("url") == EPISODE_EXTENSION:
            return i, ext.get("valueReference") or {}
    return None


def of_response(unit: Unit, response: dict) -> dict:
    """The EpisodeOfCare of a QuestionnaireResponse; 422 when none can be told or it is another patient's."""
    patient = records.ref_text(response.get("subject"))
    if patient is None or not patient.startswith("Patient/"):
        raise Unprocessable("A scored QuestionnaireResponse needs subject: the Patient who answered",
                            code="required", expression="QuestionnaireResponse.subject")
    if (ext := named(response)) is not None:
        where = f"QuestionnaireResponse.extension[{ext[0]}].valueReference"
        return _check(_own(unit, patient, ext[1]) or _require(unit, ext[1], where), patient, where)
    if response.get("encounter"):
        encounter = _require(unit, response["encounter"], "QuestionnaireResponse.encounter")
        _same_patient(encounter.get("subject"), patient, "QuestionnaireResponse.encounter")
        for ref in encounter.get("episodeOfCare", [])[:1]:
            return _check(_require(unit, ref, "Encounter.episodeOfCare"), patient, "QuestionnaireResponse.encounter")
    return _sole_active(unit, patient)


def _check(episode: dict, patient: str, where: str) -> dict:
    if episode.get("resourceType") != "EpisodeOfCare":
        raise Unprocessable(f"{where} must refer to an EpisodeOfCare", code="business-rule", expression=where)
    _same_patient(episode.get("patient"), patient, where)
    return episode


def _same_patient(reference: object, patient: str, where: str) -> None:
    if records.ref_text(reference) != patient:
        raise Unprocessable(f"{where} belongs to {records.ref_text(reference) or 'no patient'}, not to the response's "
                            f"subject {patient}", code="business-rule", expression=where)


def _own(unit: Unit, patient: str, reference: object) -> dict | None:
    """The referenced episode when it is one of the patient's (read with the patient's goals and scores, one query)."""
    episodes = lookups.current(unit, "EpisodeOfCare", lookups.patient_records(unit, patient.split("/", 1)[1])["EpisodeOfCare"])
    return next((e for e in episodes if f"EpisodeOfCare/{e['id']}" == records.ref_text(reference)), None)


def _sole_active(unit: Unit, patient: str) -> dict:
    episodes = lookups.current(unit, "EpisodeOfCare", lookups.patient_records(unit, patient.split("/", 1)[1])["EpisodeOfCare"])
    rows = [e for e in episodes if e.get("status") == "active" and records.ref_text(e.get("patient")) == patient]
    if len(rows) != 1:
        found = "no active episode" if not rows else "more than one active episode"
        raise Unprocessable(f"{patient} has {found}: name the episode with the extension {EPISODE_EXTENSION} "
                            "(valueReference EpisodeOfCare/<id>) or an encounter of the episode", code="required",
                            expression="QuestionnaireResponse.extension")
    return rows[0]


def _require(unit: Unit, reference: object, where: str) -> dict:
    """records.require() through lookups.read (no flush)."""
    found = lookups.read(unit, reference)
    return found if found is not None else records.require(unit, reference, where)
