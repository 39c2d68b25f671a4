"""Reads for the outcome-measure workflows that do not flush the unit's queued writes when those cannot matter.

`Unit.current()` and `Unit.find()` flush first so that a unit reads its own writes; each flush is a round trip. The
scorer reads resources of types the unit usually has not written (the episode, its care team, goals, flags): when the
unit has written nothing of that type, the queued rows cannot change the answer, and the read goes straight to the
database, so the unit's writes still leave in one pipelined round trip at commit (docs/design.md, Storage).
"""
from __future__ import annotations

import json

from sqlalchemy import false, select

from .. import repository, search
from ..interactions import Unit
from ..tables import resource, sp_reference
from . import records


def wrote(unit: Unit, rtype: str) -> bool:
    return any(c.stored.type == rtype for c in unit.changes)


def read(unit: Unit, reference: object) -> dict | None:
    """records.read() without a flush when the unit has not written the type."""
    parts = records.split(reference)
    if parts is None or wrote(unit, parts[0]):
        return records.read(unit, reference)
    return records.parsed(repository.current(unit.conn, *parts))


def find(unit: Unit, rtype: str, query: str, limit: int, *, flush: bool | None = None) -> list[dict]:
    """unit.find() without a flush when the unit has not written the type (flush=False: never, the caller lays the
    unit's own writes over the result); the matches' contents."""
    if flush if flush is not None else wrote(unit, rtype):
        rows = unit.find(rtype, query, limit=limit)
    else:
        rows = search.find(unit.conn, rtype, query, unit.options.base_url, limit)
    return [json.loads(row.content) for row in rows]


def of_patient(unit: Unit, patient_id: str, types: tuple[str, ...]) -> dict[str, list[dict]]:
    """The stored resources of these types whose `patient` search parameter is Patient/<id>, by type, in one query
    (no flush: the caller lays the unit's own writes over them)."""
    ref = sp_reference
    members = select(ref.c.resource_pk).where(ref.c.target_type == "Patient", ref.c.target_id == patient_id,
                                              ref.c.type.in_(types), ref.c.name == "patient")
    rows = unit.conn.execute(select(resource.c.type, resource.c.content)
                             .where(resource.c.pk.in_(members), resource.c.deleted == false())).all()
    out: dict[str, list[dict]] = {t: [] for t in types}
    for rtype, content in rows:
        out[rtype].append(json.loads(content))
    return out


SNAPSHOT_TYPES = ("EpisodeOfCare", "Goal", "Observation")


def patient_records(unit: Unit, patient_id: str) -> dict[str, list[dict]]:
    """of_patient() for the episodes, goals and observations of a patient, read once per unit: the scorer and the goal
    workflow share it (one round trip per scored response). Stored state only: lay the unit's writes over it."""
    cache = records.memo(unit).setdefault("patient_records", {})
    if patient_id not in cache:
        cache[patient_id] = of_patient(unit, patient_id, SNAPSHOT_TYPES)
    return cache[patient_id]


def current(unit: Unit, rtype: str, stored: list[dict]) -> list[dict]:
    """Stored resources of a type with the unit's own writes of that type laid over them (latest version wins)."""
    found = {r["id"]: r for r in stored}
    for version in records.written(unit).values():
        if version.type == rtype:
            found.pop(version.id, None)
            if (content := records.parsed(version)) is not None:
                found[version.id] = content
    return list(found.values())
