"""What the program operations read, in a few queries over the search index whatever the number of episodes:
episodes, their attended Encounters in a time range, certifications, patients' birth dates and programs' zones.

The program's time zone is the HL7 `timezone` extension (an IANA name) on the program Organization (the episode's
managingOrganization), default America/New_York: the zone defines which local day, and so which ISO week, a
session belongs to. See: https://hl7.org/fhir/extensions/StructureDefinition-timezone.html
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, String, and_, any_, bindparam, false, or_, select
from sqlalchemy.dialects.postgresql import ARRAY

from . import search
from .tables import resource, sp_date, sp_quantity, sp_reference, sp_token

TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
DEFAULT_ZONE = "America/New_York"
SNOMED = "http://snomed.info/sct"
CHUNK = 500  # ids per IN list, far below the bind limits of SQLite and PostgreSQL
R = resource


@dataclass
class Facts:
    """Time zones of the programs and birth dates of the patients of some episodes."""

    zones: dict[str, ZoneInfo]  # 'Organization/id' -> zone
    births: dict[str, date]  # 'Patient/id' -> birth date

    def zone(self, episode: dict) -> ZoneInfo:
        return self.zones.get(_ref(episode.get("managingOrganization")) or "") or ZoneInfo(DEFAULT_ZONE)

    def birth(self, episode: dict) -> date | None:
        return self.births.get(patient_of(episode) or "")


def patient_of(episode: dict) -> str | None:
    return _ref(episode.get("patient"))


def episode(conn: Connection, rid: str) -> dict | None:
    rows = search.fetch(conn, [("EpisodeOfCare", rid)])
    return json.loads(rows[0].content) if rows else None


def facts(conn: Connection, episodes: list[dict]) -> Facts:
    orgs = {r for e in episodes if (r := _ref(e.get("managingOrganization")))}
    patients = {r.split("/", 1)[1] for e in episodes if (r := patient_of(e))}
    return Facts(zones(conn, orgs), births(conn, sorted(patients)))


def zones(conn: Connection, orgs: set[str]) -> dict[str, ZoneInfo]:
    out = {}
    for row in search.fetch(conn, [("Organization", o.split("/", 1)[1]) for o in orgs if o.startswith("Organization/")]):
        code = next((e.get("valueCode") for e in json.loads(row.content).get("extension", []) if e.get("url") == TIMEZONE), None)
        out[f"Organization/{row.id}"] = zone(code)
    return out


def zone(code: object) -> ZoneInfo:
    """The IANA zone named, the default for none or an unknown name."""
    try:
        return ZoneInfo(code) if isinstance(code, str) and code else ZoneInfo(DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def births(conn: Connection, patient_ids: list[str]) -> dict[str, date]:
    """Birth dates from the birthdate index (no Patient is parsed)."""
    out = {}
    for ids in _chunks(patient_ids):
        q = (select(R.c.id, sp_date.c.low).join(sp_date, sp_date.c.resource_pk == R.c.pk)
             .where(R.c.type == "Patient", _one_of(conn, R.c.id, ids), R.c.deleted == false(),
                    sp_date.c.type == "Patient", sp_date.c.name == "birthdate"))
        out.update((f"Patient/{rid}", low.date()) for rid, low in conn.execute(q).all())
    return out


@dataclass(frozen=True)
class Attended:
    """One finished Encounter as the search index holds it (nothing parsed): start (naive UTC), minutes present
    (Encounter.length in min or h, else the period) and the SNOMED CT codes of its type."""

    start: datetime
    minutes: float
    codes: frozenset[str]


def attended(conn: Connection, episode_ids: list[str], low: datetime, high: datetime) -> dict[str, list[Attended]]:
    """Finished Encounters of the episodes whose period overlaps [low, high) (naive UTC), by episode id, read from the
    index rows alone: one row per Encounter and type code, no resource content fetched or parsed."""
    ref, when, status, length, kind = (sp_reference.alias(), sp_date.alias(), sp_token.alias(), sp_quantity.alias(),
                                       sp_token.alias())
    found: dict[tuple[str, int], list] = {}
    for ids in _chunks(episode_ids):
        q = (select(ref.c.target_id, ref.c.resource_pk, when.c.low, when.c.high, length.c.low, length.c.code, kind.c.code)
             .select_from(ref)
             .join(when, and_(when.c.resource_pk == ref.c.resource_pk, when.c.type == "Encounter", when.c.name == "date"))
             .join(status, and_(status.c.resource_pk == ref.c.resource_pk, status.c.type == "Encounter", status.c.name == "status"))
             .outerjoin(length, and_(length.c.resource_pk == ref.c.resource_pk, length.c.type == "Encounter",
                                     length.c.name == "length"))
             .outerjoin(kind, and_(kind.c.resource_pk == ref.c.resource_pk, kind.c.type == "Encounter", kind.c.name == "type",
                                   kind.c.system == SNOMED))
             .where(ref.c.type == "Encounter", ref.c.name == "episode-of-care", ref.c.target_type == "EpisodeOfCare",
                    _one_of(conn, ref.c.target_id, ids), when.c.low < high, when.c.high > low, status.c.code == "finished"))
        for eid, pk, start, end, value, unit, code in conn.execute(q).all():
            found.setdefault((eid, pk), [start, _minutes(start, end, value, unit), set()])[2].add(code)
    out: dict[str, list[Attended]] = {}
    for (eid, _), (start, minutes, codes) in found.items():
        out.setdefault(eid, []).append(Attended(start, minutes, frozenset(codes - {None})))
    return out


def _minutes(start: datetime, end: datetime, value: float | None, unit: str | None) -> float:
    if value is not None:
        return value * (60 if unit == "h" else 1)
    if end >= datetime(9999, 1, 1):  # no end
        return 0.0
    return max(0.0, (end - start).total_seconds() // 60)  # the index keeps the end's whole second: [start, end + 1 s)


def documents(conn: Connection, episode_ids: list[str], system: str, codes: tuple[str, ...]) -> dict[str, list[dict]]:
    """Current DocumentReferences of a type (system|code) whose context.encounter is one of the episodes."""
    ref, kind, status = sp_reference.alias(), sp_token.alias(), sp_token.alias()
    out: dict[str, list[dict]] = {}
    for ids in _chunks(episode_ids):
        q = (select(ref.c.target_id, R.c.content)
             .join(ref, and_(ref.c.resource_pk == R.c.pk, ref.c.type == "DocumentReference", ref.c.name == "encounter"))
             .join(kind, and_(kind.c.resource_pk == R.c.pk, kind.c.type == "DocumentReference", kind.c.name == "type"))
             .join(status, and_(status.c.resource_pk == R.c.pk, status.c.type == "DocumentReference", status.c.name == "status"))
             .where(R.c.type == "DocumentReference", R.c.deleted == false(), ref.c.target_type == "EpisodeOfCare",
                    _one_of(conn, ref.c.target_id, ids), kind.c.system == system, kind.c.code.in_(codes), status.c.code == "current"))
        for eid, content in conn.execute(q).all():
            out.setdefault(eid, []).append(json.loads(content))
    return out


def active_episodes(conn: Connection, organization: str | None) -> list[dict]:
    """Every active EpisodeOfCare, or those of one program Organization ('Organization/id')."""
    status = sp_token.alias()
    q = (select(R.c.content)
         .join(status, and_(status.c.resource_pk == R.c.pk, status.c.type == "EpisodeOfCare", status.c.name == "status"))
         .where(R.c.type == "EpisodeOfCare", R.c.deleted == false(), status.c.code == "active"))
    if organization:
        org = sp_reference.alias()
        q = q.join(org, and_(org.c.resource_pk == R.c.pk, org.c.type == "EpisodeOfCare", org.c.name == "organization")).where(
            org.c.target_type == "Organization", org.c.target_id == organization.split("/", 1)[1])
    return [json.loads(content) for (content,) in conn.execute(q.order_by(R.c.id)).all()]


def linked(conn: Connection, rtype: str, param: str, target_type: str, ids: list[str], base_url: str = "",
           during: tuple[datetime, datetime] | None = None) -> list[dict]:
    """Current `rtype` resources whose reference parameter `param` names one of `ids` of `target_type` (stored
    relative, or with `base_url` also as an absolute URL on our base, as a search matches them), and with `during`
    (naive UTC [low, high)) whose `date` parameter overlaps it: `rtype?param=a,b,c&date=gt..&date=lt..` in one
    query per chunk with one array bind per list, where a search renders an OR per reference (and a long list with
    other criteria plans badly on PostgreSQL). In storage order."""
    ref, out = sp_reference.alias(), []
    for chunk in _chunks(sorted(set(ids))):
        named = and_(ref.c.target_type == target_type, _one_of(conn, ref.c.target_id, chunk))
        if base_url:
            named = or_(named, _one_of(conn, ref.c.url, [f"{base_url}/{target_type}/{i}" for i in chunk]))
        keys = select(ref.c.resource_pk).where(ref.c.type == rtype, ref.c.name == param, named)
        if during:
            when = sp_date.alias()
            keys = keys.join(when, and_(when.c.resource_pk == ref.c.resource_pk, when.c.type == rtype, when.c.name == "date",
                                        when.c.low < during[1], when.c.high > during[0]))
        rows = conn.execute(select(R.c.content).where(R.c.pk.in_(keys), R.c.deleted == false()).order_by(R.c.pk)).all()
        out += [json.loads(row.content) for row in rows]
    return out


def _ref(reference: object) -> str | None:
    ref = reference.get("reference") if isinstance(reference, dict) else None
    return ref if isinstance(ref, str) else None


def _one_of(conn: Connection, column, ids: list[str]):
    """column IN ids; on PostgreSQL `= ANY(array)`, one bind whatever the number of ids (an IN list of 500 binds
    costs more to render and send than the query costs to run)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(String)))
    return column.in_(ids)


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]
