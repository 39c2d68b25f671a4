"""What a remote FHIR server says it supports, read from its CapabilityStatement (GET [base]/metadata).

Only what the statement states counts: an interaction, a conditional create or a resource type it does not
list is taken as unsupported (https://hl7.org/fhir/R4/capabilitystatement.html: "a server SHALL only declare
interactions it supports"). The first `rest` entry in server mode is read; a statement without one supports
nothing over REST.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TypeSupport:
    """What the server does for one resource type (CapabilityStatement.rest.resource)."""

    interactions: frozenset[str] = frozenset()  # read, vread, update, patch, delete, history-instance, history-type, create, search-type
    conditional_create: bool = False
    conditional_update: bool = False
    conditional_delete: str = "not-supported"  # not-supported | single | multiple
    update_create: bool = False  # PUT to a new id creates it (client-assigned ids)


@dataclass(frozen=True)
class Capabilities:
    """A remote server's stated support; `statement` is the CapabilityStatement itself."""

    fhir_version: str | None
    system: frozenset[str]  # transaction, batch, search-system, history-system
    types: dict[str, TypeSupport] = field(default_factory=dict)
    formats: frozenset[str] = frozenset()
    statement: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def transaction(self) -> bool:
        return "transaction" in self.system

    @property
    def batch(self) -> bool:
        return "batch" in self.system

    def of(self, rtype: str) -> TypeSupport:
        return self.types.get(rtype, TypeSupport())

    def supports(self, interaction: str, rtype: str | None = None) -> bool:
        """A system interaction (rtype None) or a type interaction, e.g. supports("create", "Task")."""
        return interaction in self.system if rtype is None else interaction in self.of(rtype).interactions

    def conditional_create(self, rtype: str) -> bool:
        return self.supports("create", rtype) and self.of(rtype).conditional_create

    def conditional_update(self, rtype: str) -> bool:
        return self.supports("update", rtype) and self.of(rtype).conditional_update

    @property
    def r4(self) -> bool:
        return bool(self.fhir_version and self.fhir_version.startswith("4.0."))


def parse(statement: dict) -> Capabilities:
    """The Capabilities a CapabilityStatement states (lenient: a malformed part counts as unsupported)."""
    rest = next((r for r in _list(statement.get("rest")) if r.get("mode") == "server"), {})
    version = statement.get("fhirVersion")
    return Capabilities(version if isinstance(version, str) else None, _codes(rest.get("interaction")),
                        {r["type"]: _type(r) for r in _list(rest.get("resource")) if isinstance(r.get("type"), str)},
                        frozenset(f for f in _list_of_str(statement.get("format"))), statement)


def _type(entry: dict) -> TypeSupport:
    delete = entry.get("conditionalDelete")
    return TypeSupport(_codes(entry.get("interaction")), entry.get("conditionalCreate") is True, entry.get("conditionalUpdate") is True,
                       delete if delete in ("single", "multiple") else "not-supported", entry.get("updateCreate") is True)


def _list(value: object) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _list_of_str(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _codes(interactions: object) -> frozenset[str]:
    return frozenset(i["code"] for i in _list(interactions) if isinstance(i.get("code"), str))
