"""Exchange with external FHIR servers: which Endpoints get (or give) which resource types, what a copy sent there
looks like, and whether 42 CFR Part 2 lets it leave.

Configuration is FHIR data (docs/exchange.md "Outbound sync"): an Endpoint of the registry (service/endpoints.py:
active, hl7-fhir-rest, `address` = the remote base, `managingOrganization` = who receives the data; credentials,
timeouts and request rate as its extensions say) with one extension per direction

    endpoint-sync  (complex)
        direction  valueCode  push | pull
        type       valueCode  a resource type (repeats): what is pushed there, or pulled from there
        mode       valueCode  push only: id (PUT [base]/Type/[our id], the default) | identifier
                              (PUT [base]/Type?identifier=<our base>/<Type>|<our id>: the remote keeps its own ids)

Every copy we send carries our address as an identifier (system `<our base>/<Type>`, value our id: the mirror of
the `<remote base>/<Type>` identifier a pulled copy gets, service/referral_bundle.origin) and in meta.source the
version it is (`<our base>/<Type>/<id>/_history/<n>`), so a redelivery can tell it already arrived.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from . import consents, endpoints, part2, privacy, repository
from .referral_bundle import origin
from .type_cache import TypeCache

SYNC_EXTENSION = "https://iop.example.org/fhir/StructureDefinition/endpoint-sync"
# What may be synced: clinical records of the program (not the server's own bookkeeping, conformance or audit).
SYNCABLE = frozenset({"EpisodeOfCare", "CarePlan", "MedicationRequest", "Goal", "Condition", "Observation", "Encounter",
                      "Patient", "ServiceRequest", "Task", "Composition", "DocumentReference", "Appointment", "CareTeam"})
MODES = ("id", "identifier")
SINGLE_IDENTIFIER = frozenset({"Composition", "QuestionnaireResponse"})  # Identifier 0..1, not a list
PURPOSE = "TREAT"  # what the program sends to partner and aftercare EHRs is for treatment (v3-ActReason)
ConfigError = endpoints.EndpointError


@dataclass(frozen=True)
class Target:
    """One remote server as the exchange uses it: the registry's Endpoint (address, credentials, timeouts, rate)
    and what is pushed there or pulled from there."""

    endpoint: endpoints.Endpoint
    push: frozenset[str] = frozenset()
    pull: tuple[str, ...] = ()
    mode: str = "id"

    @property
    def endpoint_id(self) -> str:
        return self.endpoint.id

    @property
    def address(self) -> str:
        return self.endpoint.address

    @property
    def organization(self) -> str | None:
        """The recipient: Endpoint.managingOrganization."""
        return self.endpoint.organization

    @property
    def reference(self) -> str:
        return self.endpoint.reference


# ------------------------------------------------------------------------------- reading an Endpoint
def target(resource: dict) -> Target:
    """The Target an Endpoint describes; ConfigError (endpoints.EndpointError) when it is inactive or misconfigured."""
    endpoint = endpoints.parse(resource)
    return Target(endpoint, *_sync(resource, endpoint.id))


def _sync(endpoint: dict, rid: str) -> tuple[frozenset[str], tuple[str, ...], str]:
    push: set[str] = set()
    pull: list[str] = []
    mode = "id"
    for ext in (e for e in endpoint.get("extension") or [] if isinstance(e, dict) and e.get("url") == SYNC_EXTENSION):
        parts = [p for p in ext.get("extension") or [] if isinstance(p, dict)]
        direction = [p.get("valueCode") for p in parts if p.get("url") == "direction"]
        types = [p.get("valueCode") for p in parts if p.get("url") == "type"]
        modes = [p.get("valueCode") for p in parts if p.get("url") == "mode"]
        if direction not in (["push"], ["pull"]) or not types or len(modes) > 1 or (modes and modes[0] not in MODES):
            raise ConfigError(f"Endpoint/{rid}: {SYNC_EXTENSION} needs one direction (push | pull), at least one type and "
                              f"at most one mode ({' | '.join(MODES)})")
        bad = [t for t in types if t not in SYNCABLE]
        if bad:
            raise ConfigError(f"Endpoint/{rid}: {SYNC_EXTENSION} type {bad[0]!r} cannot be synced; use {', '.join(sorted(SYNCABLE))}")
        if direction == ["push"]:
            push.update(types)
            mode = modes[0] if modes else mode
        else:
            pull.extend(t for t in types if t not in pull)
    return frozenset(push), tuple(pull), mode


def load(conn: Connection, endpoint_id: str) -> Target:
    """The Target of Endpoint/<id> as stored now; ConfigError when it is gone or unusable."""
    stored = repository.current(conn, "Endpoint", endpoint_id)
    if stored is None or stored.deleted or stored.content is None:
        raise ConfigError(f"Endpoint/{endpoint_id} does not exist on this server")
    return target(json.loads(stored.content))


def for_organization(conn: Connection, org_ref: str) -> Target | None:
    """The first active FHIR REST Endpoint (by id) an Organization manages, or None (a misconfigured one raises
    ConfigError naming it)."""
    found = endpoints.for_organization(conn, org_ref)
    return load(conn, found[0].id) if found else None


# ------------------------------------------------------------------------------- the push targets, per process
def configured(conn: Connection) -> list[Target]:
    """Every usable Endpoint with a sync configuration, cached per process until any Endpoint is written (type_cache)."""
    return _configured.get(conn)


def _syncing(contents: Iterable[str | None]) -> list[Target]:
    targets = []
    for text in contents:
        try:
            found = target(json.loads(text or "{}"))
        except ValueError:  # ConfigError included
            continue  # an Endpoint for something else, or a broken one: `flask sync check` names it
        if found.push or found.pull:
            targets.append(found)
    return targets


_configured = TypeCache("Endpoint", _syncing)


# ------------------------------------------------------------------------------- the copy we send
def copy(doc: dict, our_base: str) -> dict:
    """The resource as a remote stores it: our address as an identifier, our version in meta.source."""
    rtype, rid = doc["resourceType"], doc["id"]
    meta = {k: v for k, v in (doc.get("meta") or {}).items() if k not in ("versionId", "lastUpdated", "source")}
    meta["source"] = f"{our_base}/{rtype}/{rid}/_history/{(doc.get('meta') or {}).get('versionId', '1')}"
    body = {"resourceType": rtype, "id": rid, "meta": meta, **{k: v for k, v in doc.items() if k not in ("resourceType", "id", "meta")}}
    ours = origin(our_base, f"{rtype}/{rid}")
    if rtype in SINGLE_IDENTIFIER:
        body.setdefault("identifier", ours)
    else:
        given = [i for i in body.get("identifier") or [] if not (isinstance(i, dict) and i.get("system") == ours["system"])]
        body["identifier"] = given + [ours]
    return body


def version_of(source: object, our_base: str, key: str) -> int | None:
    """Our version number a remote copy says it is (from meta.source), None when it is not one of ours."""
    prefix = f"{our_base}/{key}/_history/"
    if isinstance(source, str) and source.startswith(prefix) and source[len(prefix):].isdigit():
        return int(source[len(prefix):])
    return None


# ------------------------------------------------------------------------------- 42 CFR Part 2
def refusal(conn: Connection, docs: list[dict], recipient: str | None, now: datetime) -> str | None:
    """Why these resources may not be sent to `recipient` (no consent covers it), or None when they may.

    Only Part 2 labelled data needs the patient's consent (consents.permits: named recipient, purpose TREAT,
    period, labels; an SUD counseling note needs its own); unlabelled data goes.
    """
    labelled = [d for d in docs if part2.is_labelled(d)]
    if not labelled:
        return None
    if not recipient:
        return "42 CFR Part 2 data cannot be sent: the Endpoint names no managingOrganization (the recipient a consent must name)"
    patient = next((p for p in (privacy.patient_of(d) for d in labelled) if p), None)
    if patient is None:
        return "42 CFR Part 2 data without a patient cannot be checked against a consent; not sent"
    note = any(part2.is_counseling_note(d) for d in labelled)
    if consents.permitting(consents.patient_consents(conn, patient), recipient, PURPOSE, note, now) is None:
        return (f"no active 42 CFR Part 2 consent names {recipient} as recipient for {PURPOSE} (patient {patient}; "
                f"{', '.join(_refs(labelled))}){'; an SUD counseling note needs a consent of its own' if note else ''}")
    return None


def _refs(docs: list[dict]) -> list[str]:
    return [f"{d.get('resourceType')}/{d.get('id')}" for d in docs][:5]
