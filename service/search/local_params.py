"""Our own search parameters: the program directory (issue 9) and R4's `near` on Location.

They join the R4 table of service/definitions at load time, so parsing, indexing, chaining,
_sort and the CapabilityStatement treat them like the standard ones. Each has a canonical URL
under https://iop.example.org/fhir/SearchParameter/ (R4 search.html#special for `near`).
`near` and `open-seats` are answered by code (service/search/near.py, service/seats.py), not by
index rows of their own: `near` from the hidden rows near-lat/near-lng of Location.position,
`open-seats` from the seat capacity minus the hidden `roster-seat` rows of linked Groups.
"""
from __future__ import annotations

from ..definitions import SearchParam

SD = "https://iop.example.org/fhir/StructureDefinition"
SP = "https://iop.example.org/fhir/SearchParameter"


def _extension(code: str, kind: str, extension: str, value_key: str, value_type: str,
               target: tuple[str, ...] = ()) -> SearchParam:
    steps = ("extension", {"where": ("url", f"{SD}/{extension}")}, value_key)
    return SearchParam(code, kind, f"{SP}/{code}", ((steps, value_type, None),), target,
                       expression=f"extension('{SD}/{extension}').value")


def _hs(code: str, extension: str) -> SearchParam:
    return _extension(code, "token", extension, "valueCodeableConcept", "CodeableConcept")


LOCAL_PARAMS: dict[str, dict[str, SearchParam]] = {
    "HealthcareService": {
        "specialized-track": _hs("specialized-track", "specialized-track"),
        "schedule-track": _hs("schedule-track", "schedule-track"),
        "condition-served": _hs("condition-served", "condition-served"),
        "modality": _hs("modality", "therapy-modality"),
        "accreditation": _hs("accreditation", "accreditation"),
        "accepted-payer": _extension("accepted-payer", "reference", "accepted-payer", "valueReference", "Reference",
                                     ("Organization",)),
        "language": SearchParam("language", "token", f"{SP}/HealthcareService-language",
                                ((("communication",), "CodeableConcept", None),),
                                expression="HealthcareService.communication"),
        "open-seats": SearchParam("open-seats", "number", f"{SP}/open-seats", special="open-seats",
                                  expression="seat-capacity minus the active members of the active Groups "
                                             "whose track-service is this HealthcareService"),
    },
    "Organization": {"accreditation": _hs("accreditation", "accreditation")},
    "Group": {"track-service": _extension("track-service", "reference", "track-service", "valueReference",
                                          "Reference", ("HealthcareService",))},
    "Location": {"near": SearchParam("near", "special", "http://hl7.org/fhir/SearchParameter/Location-near",
                                     special="near", expression="Location.position")},
}


def merged(params: dict[str, dict[str, SearchParam]]) -> dict[str, dict[str, SearchParam]]:
    """The R4 parameters with ours added (ours never replace a standard code)."""
    out = {rtype: dict(table) for rtype, table in params.items()}
    for rtype, table in LOCAL_PARAMS.items():
        for code, param in table.items():
            out.setdefault(rtype, {}).setdefault(code, param)
    return out
