"""Search index rows of a resource, extracted with the compiled paths of the R4 search parameters.

Value semantics follow https://hl7.org/fhir/R4/search.html: strings are matched case- and
accent-insensitively from the start; tokens keep system, code and display text; dates become
[low, high) ranges in UTC; quantities and numbers become [low, high] ranges.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from functools import lru_cache

from . import dates
from .definitions import SearchParam, tables

MAX_INDEXED_TEXT = 200  # characters of a string kept in the btree index (the full text is in `exact`)


@lru_cache(maxsize=8192)
def normalize(text: str) -> str:
    """Case-folded text without accents: what string search compares (cached: values repeat across parameters)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def index_rows(resource: dict) -> dict[str, list[dict]]:
    """{kind: [row, ...]} for every indexed value of `resource` (rows lack resource_pk)."""
    rtype = resource["resourceType"]
    rows: dict[str, list[dict]] = {}
    for code, param in tables().search_params.get(rtype, {}).items():
        if param.column:
            continue
        seen: set[tuple] = set()
        for row in _param_rows(resource, param):
            key = tuple(row.values())
            if key not in seen:
                seen.add(key)
                rows.setdefault(param.type, []).append({"type": rtype, "name": code, **row})
    for kind, extra in _hidden_rows(resource).items():
        rows.setdefault(kind, []).extend(extra)
    return rows


# The index tables of the hidden rows per type (the repository clears them on update and delete).
HIDDEN_KINDS = {"Location": {"number"}, "Group": {"date"}, "HealthcareService": {"number"}}


def _hidden_rows(resource: dict) -> dict[str, list[dict]]:
    """Rows no search parameter owns: the inputs of `near` (Location) and `open-seats` (Group rosters)."""
    rtype = resource["resourceType"]
    if rtype == "Location":
        return {"number": position_rows(resource)}
    if rtype == "Group":
        return {"date": roster_seat_rows(resource)}
    if rtype == "HealthcareService":
        return {"number": capacity_rows(resource)}
    return {}


SEAT_CAPACITY = "https://iop.example.org/fhir/StructureDefinition/seat-capacity"


def capacity_rows(service: dict) -> list[dict]:
    """The track's seat capacity (first seat-capacity extension), the minuend of its open seats."""
    for ext in _as_list(service.get("extension")):
        if isinstance(ext, dict) and ext.get("url") == SEAT_CAPACITY and isinstance(ext.get("valueUnsignedInt"), int):
            return [{"type": "HealthcareService", "name": "seat-capacity", "value": float(ext["valueUnsignedInt"])}]
    return []


def position_rows(location: dict) -> list[dict]:
    """near-lat and near-lng of Location.position, for the bounding box of a `near` search."""
    position = location.get("position")
    if not isinstance(position, dict):
        return []
    lat, lng = position.get("latitude"), position.get("longitude")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lat, lng)):
        return []
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return []
    return [{"type": "Location", "name": "near-lat", "value": float(lat)},
            {"type": "Location", "name": "near-lng", "value": float(lng)}]


def roster_seat_rows(group: dict) -> list[dict]:
    """One `roster-seat` row per member of an active roster who is not marked inactive: the membership period.

    Not deduplicated: two members with the same period hold two seats. Whether a seat is taken now is
    decided at query time (low <= now < high), so a membership that ends is free the moment it ends.
    """
    if group.get("active") is False:
        return []
    rows = []
    for member in _as_list(group.get("member")):
        if not isinstance(member, dict) or member.get("inactive") is True:
            continue
        period = member.get("period") if isinstance(member.get("period"), dict) else {}
        span = next(_dates(period, "Period", None), None) if period else {"low": dates.MIN, "high": dates.MAX}
        rows.append({"type": "Group", "name": "roster-seat", **(span or {"low": dates.MIN, "high": dates.MAX})})
    return rows


def _param_rows(resource: dict, param: SearchParam) -> Iterator[dict]:
    if param.special == "deceased":
        yield {**_NO_TOKEN, "code": "true" if _deceased(resource) else "false"}
        return
    if not param.paths:  # answered by code (near, open-seats), not by rows of its own
        return
    extract = _EXTRACTORS[param.type]
    for steps, type_, implied_system in param.paths:
        for value in walk(resource, steps):
            yield from extract(value, type_, implied_system)


def _deceased(patient: dict) -> bool:
    return patient.get("deceasedBoolean") is True or "deceasedDateTime" in patient


def walk(node: object, steps: tuple) -> list:
    """The values reached from `node` by compiled path steps (keys, where-filters, type filters, [0])."""
    values = [node]
    for step in steps:
        if isinstance(step, str):
            values = [v for item in values if isinstance(item, dict) for v in _as_list(item.get(step))]
        elif "where" in step:
            key, expected = step["where"]
            values = [v for v in values if isinstance(v, dict) and v.get(key) == expected]
        elif "is" in step:
            values = [v for v in values if reference_type(v) == step["is"]]
        elif "first" in step:
            values = values[:1]
    return values


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def reference_type(ref: object) -> str | None:
    """The resource type a Reference points at (from Reference.reference, else Reference.type)."""
    if not isinstance(ref, dict):
        return None
    literal = ref.get("reference")
    if isinstance(literal, str) and "?" in literal:  # a conditional reference: Type?criteria
        return literal.split("?", 1)[0].rsplit("/", 1)[-1] or None
    if isinstance(literal, str) and "/" in literal and not literal.startswith(("urn:", "#")):
        parts = literal.split("/")
        idx = parts.index("_history") - 2 if "_history" in parts else len(parts) - 2
        return parts[idx] if idx >= 0 else None
    rtype = ref.get("type")
    return rtype.rsplit("/", 1)[-1] if isinstance(rtype, str) else None


# ---------------------------------------------------------------------------------- per kind
def _strings(value: object, type_: str, _system: str | None) -> Iterator[dict]:
    if isinstance(value, str):
        yield {"value": normalize(value)[:MAX_INDEXED_TEXT], "exact": value}
    elif isinstance(value, dict):
        for part in _string_parts(value, type_):
            yield {"value": normalize(part)[:MAX_INDEXED_TEXT], "exact": part}


def _string_parts(value: dict, type_: str) -> list[str]:
    keys = {"HumanName": ("text", "family", "given", "prefix", "suffix"),
            "Address": ("text", "line", "city", "district", "state", "postalCode", "country")}.get(type_, ())
    return [s for k in keys for s in _as_list(value.get(k)) if isinstance(s, str)]


_NO_TOKEN = {"system": None, "code": None, "text": None, "type_system": None, "type_code": None}


def _tokens(value: object, type_: str, implied_system: str | None) -> Iterator[dict]:
    if isinstance(value, bool):
        yield {**_NO_TOKEN, "code": "true" if value else "false"}
    elif isinstance(value, str):
        yield {**_NO_TOKEN, "system": implied_system, "code": value}
    elif isinstance(value, dict):
        yield from _complex_tokens(value, type_)


def _complex_tokens(value: dict, type_: str) -> Iterator[dict]:
    if type_ == "CodeableConcept":
        for coding in _as_list(value.get("coding")):
            yield from _complex_tokens(coding, "Coding")
        if value.get("text"):
            yield {**_NO_TOKEN, "text": normalize(value["text"])[:MAX_INDEXED_TEXT]}
    elif type_ == "Coding":
        display = value.get("display")
        yield {**_NO_TOKEN, "system": value.get("system"), "code": value.get("code"),
               "text": normalize(display)[:MAX_INDEXED_TEXT] if display else None}
    elif type_ == "Identifier":
        yield from _identifier_tokens(value)
    elif type_ == "ContactPoint":
        # HAPI and Medplum alike: system = ContactPoint.system (phone, email…), code = the value
        yield {**_NO_TOKEN, "system": value.get("system"), "code": value.get("value")}


def _identifier_tokens(value: dict) -> Iterator[dict]:
    base = {**_NO_TOKEN, "system": value.get("system"), "code": value.get("value")}
    id_type = value["type"] if isinstance(value.get("type"), dict) else {}
    text = id_type.get("text")
    base["text"] = normalize(text)[:MAX_INDEXED_TEXT] if text else None
    codings = [c for c in _as_list(id_type.get("coding")) if isinstance(c, dict)]
    if not codings:
        yield base
    for coding in codings:  # one row per identifier type, for :of-type
        yield {**base, "type_system": coding.get("system"), "type_code": coding.get("code")}


def _references(value: object, type_: str, _system: str | None) -> Iterator[dict]:
    empty = {"target_type": None, "target_id": None, "url": None, "ident_system": None, "ident_value": None}
    if isinstance(value, str):  # canonical / uri
        yield {**empty, "url": value.split("|")[0]}
        return
    if not isinstance(value, dict):
        return
    literal = value.get("reference")
    if isinstance(literal, str) and not literal.startswith("#"):
        yield {**empty, **split_reference(literal)}
    ident = value.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        yield {**empty, "ident_system": ident.get("system"), "ident_value": ident["value"]}


def split_reference(literal: str) -> dict:
    """{target_type, target_id} for a relative Type/id[/_history/v]; {url} (unversioned) for an absolute one."""
    parts = literal.split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) == 2 and parts[0] in tables().all_resource_types:
        return {"target_type": parts[0], "target_id": parts[1]}
    return {"url": "/".join(parts)}


def _dates(value: object, type_: str, _system: str | None) -> Iterator[dict]:
    if isinstance(value, str):
        yield dict(zip(("low", "high"), dates.parse_range(value), strict=True))
    elif isinstance(value, dict) and type_ == "Period":
        low = dates.parse_range(value["start"])[0] if "start" in value else dates.MIN
        high = dates.parse_range(value["end"])[1] if "end" in value else dates.MAX
        yield {"low": low, "high": high}
    elif isinstance(value, dict) and type_ == "Timing":
        events = [dates.parse_range(e) for e in _as_list(value.get("event")) if isinstance(e, str)]
        if events:
            yield {"low": min(e[0] for e in events), "high": max(e[1] for e in events)}


def _numbers(value: object, _type: str, _system: str | None) -> Iterator[dict]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        yield {"value": float(value)}


def _quantities(value: object, type_: str, _system: str | None) -> Iterator[dict]:
    if not isinstance(value, dict):
        return
    if type_ == "Range":
        low, high = value.get("low") or {}, value.get("high") or {}
        unit = low or high
        yield {"low": float(low.get("value", float("-inf"))), "high": float(high.get("value", float("inf"))),
               "system": unit.get("system"), "code": unit.get("code") or unit.get("unit")}
    elif isinstance(value.get("value"), (int, float)):
        v = float(value["value"])
        yield {"low": v, "high": v, "system": value.get("system"), "code": value.get("code") or value.get("unit")}


def _uris(value: object, _type: str, _system: str | None) -> Iterator[dict]:
    if isinstance(value, str):
        yield {"value": value}


_EXTRACTORS = {"string": _strings, "token": _tokens, "reference": _references, "date": _dates,
               "number": _numbers, "quantity": _quantities, "uri": _uris}
