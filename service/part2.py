"""42 CFR Part 2 security labels, set at write time (domain brief §5.2 and §5.4 item 1).

A resource derived from substance use disorder (SUD) treatment data carries in meta.security the DS4P
pattern R + 42CFRPart2 + SUD + NORDSCLCD (http://hl7.org/fhir/uv/security-label-ds4p). The server adds
them when the resource is written and
  (a) is a Condition coded as an SUD (ICD-10-CM F10–F19, or one of the SNOMED CT disorders below),
  (b) is a MedicationRequest for a medication for addiction treatment (RxNorm, domain brief §4.5),
  (c) is an Observation of AUDIT-C or DAST-10 (LOINC, domain brief §4.4),
  (d) names a labelled resource as its basis in one of the BASIS elements (ServiceRequest.reasonReference,
      Task.focus, EpisodeOfCare.referralRequest, …: one lookup per reference, only when such an element is present),
  (e) already carries any of the four labels (a client's own labelling is completed, never removed);
  a Bundle (its labels are a high-water mark) is left as written.
Labels are never removed: an update that leaves them out gets them back from the version it replaces.
"""
from __future__ import annotations

import json
from collections.abc import Callable

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PART2_LABELS = (
    {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
    {"system": ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"},
    {"system": ACT_CODE, "code": "SUD", "display": "substance use disorder information sensitivity"},
    {"system": ACT_CODE, "code": "NORDSCLCD", "display": "no redisclosure without consent directive"},
)
_PART2_KEYS = {(label["system"], label["code"]) for label in PART2_LABELS}
# v3-ActCode PSYTHPN "psychotherapy note information sensitivity": how a client marks an SUD counseling note
# (the 2024 rule's counseling notes, domain brief §5.1 (3)); such a note needs a consent of its own.
COUNSELING_NOTE = (ACT_CODE, "PSYTHPN")

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
# SNOMED CT disorders: 7200002 alcoholism, 5602001 opioid abuse, 75544000 opioid dependence,
# 66214007 substance abuse, 191816009 drug dependence.
SUD_SNOMED = frozenset({"7200002", "5602001", "75544000", "66214007", "191816009"})
# Medications for addiction treatment (domain brief §4.5: buprenorphine(/naloxone), naltrexone, acamprosate, disulfiram).
MAT_RXNORM = frozenset({"1010604", "1010600", "351267", "351265", "1996184", "1996192", "1797650", "1483744",
                        "637213", "835726", "197623"})
# AUDIT-C panel, total and items; DAST-10 total.
SUD_LOINC = frozenset({"72109-2", "75626-2", "68517-2", "68519-8", "68520-6", "82667-7"})

# Elements naming the basis of a resource: a resource whose basis is labelled is derived from it (rule d).
BASIS = {
    "ServiceRequest": ("reasonReference", "basedOn", "supportingInfo"),
    "Task": ("focus", "basedOn"),
    "EpisodeOfCare": ("referralRequest", "diagnosis"),
    "CarePlan": ("addresses", "basedOn"),
    "Goal": ("addresses",),
    "Appointment": ("basedOn", "reasonReference"),
    "Encounter": ("episodeOfCare", "basedOn", "reasonReference"),
    "Observation": ("derivedFrom", "basedOn"),
    "DocumentReference": ("context",),
    "Composition": ("encounter",),
    "MedicationRequest": ("reasonReference", "basedOn"),
}


def security(resource: dict) -> set[tuple[str, str]]:
    """The (system, code) pairs in meta.security."""
    meta = resource.get("meta")
    labels = meta.get("security") if isinstance(meta, dict) else None
    if not isinstance(labels, list):
        return set()
    return {(s.get("system"), s.get("code")) for s in labels if isinstance(s, dict)}


def is_labelled(resource: dict) -> bool:
    """Whether a resource is Part 2 data (or a counseling note): disclosure outside the program needs a consent."""
    labels = security(resource)
    return bool(labels & _PART2_KEYS) or COUNSELING_NOTE in labels


def is_counseling_note(resource: dict) -> bool:
    return COUNSELING_NOTE in security(resource)


def text_is_labelled(content: str | None) -> bool:
    """is_labelled on stored JSON text, without parsing text that cannot carry a label."""
    if not content or ("42CFRPart2" not in content and "PSYTHPN" not in content and '"SUD"' not in content):
        return False
    return is_labelled(json.loads(content))


def _codings(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, dict) or not isinstance(value.get("coding"), list):
        return []
    return [(c.get("system"), c.get("code")) for c in value["coding"] if isinstance(c, dict)]


def is_sud_coded(resource: dict) -> bool:
    """Rules (a) to (c): the resource's own code says SUD."""
    rtype = resource.get("resourceType")
    if rtype == "Condition":
        return any(s == ICD10CM and isinstance(c, str) and c[:3] in _F10_F19 or s == SNOMED and c in SUD_SNOMED
                   for s, c in _codings(resource.get("code")))
    if rtype == "MedicationRequest":
        return any(s == RXNORM and c in MAT_RXNORM for s, c in _codings(resource.get("medicationCodeableConcept")))
    if rtype == "Observation":
        return any(s == LOINC and c in SUD_LOINC for s, c in _codings(resource.get("code")))
    return False


_F10_F19 = frozenset(f"F1{d}" for d in range(10))


def basis_references(resource: dict) -> list[str]:
    """'Type/id' references in the resource's BASIS elements (rule d)."""
    out: list[str] = []
    for name in BASIS.get(resource.get("resourceType", ""), ()):
        value = resource.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("condition"), dict):  # EpisodeOfCare.diagnosis
                item = item["condition"]
            ref = item.get("reference") if isinstance(item, dict) else None
            if isinstance(ref, str) and ref.count("/") == 1 and not ref.startswith(("#", "urn:")):
                out.append(ref)
    return out


def should_label(resource: dict, prior_content: str | None, lookup: Callable[[str], str | None]) -> bool:
    """Whether the resource must carry the Part 2 labels; `lookup('Type/id')` gives a basis's stored content.

    Not a Bundle: its labels are a high-water mark, which must not carry refrain codes such as NORDSCLCD (DS4P).
    """
    if resource.get("resourceType") == "Bundle":
        return False
    if security(resource) & _PART2_KEYS or _part2(prior_content):
        return True
    if is_sud_coded(resource):
        return True
    return any(_part2(lookup(ref)) for ref in basis_references(resource))


def _part2(content: str | None) -> bool:
    return bool(content) and "42CFRPart2" in content and bool(security(json.loads(content)) & _PART2_KEYS)


def add_labels(resource: dict) -> None:
    """Add the missing Part 2 labels to meta.security (in place; meta is an object here, validation checked the rest)."""
    meta = resource.setdefault("meta", {})
    labels = meta.get("security") if isinstance(meta.get("security"), list) else []
    have = {(s.get("system"), s.get("code")) for s in labels if isinstance(s, dict)}
    meta["security"] = labels + [dict(label) for label in PART2_LABELS if (label["system"], label["code"]) not in have]


def keep_counseling_label(resource: dict, prior_content: str | None) -> None:
    """A counseling note stays one: PSYTHPN is never removed by an update either."""
    if prior_content and "PSYTHPN" in prior_content and is_counseling_note(json.loads(prior_content)) \
            and not is_counseling_note(resource):
        meta = resource.setdefault("meta", {})
        labels = meta.get("security") if isinstance(meta.get("security"), list) else []
        meta["security"] = labels + [{"system": ACT_CODE, "code": "PSYTHPN", "display": "psychotherapy note information sensitivity"}]
