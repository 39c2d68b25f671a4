"""A registry of the service's own FHIR operations, so that each feature module declares its operations in one place.

A module calls `register(...)` at import time and adds one import line to `service/ops/modules.py`. The REST
layer (operations.py) dispatches to registered handlers, scopes.py takes the scope each one needs, and the
CapabilityStatement lists each with its OperationDefinition canonical (the OperationDefinition itself is a
guide resource: profiles/input/fsh, served read-only).

See: https://hl7.org/fhir/R4/operations.html and https://hl7.org/fhir/R4/capabilitystatement-definitions.html#CapabilityStatement.rest.resource.operation
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Response

TypeHandler = Callable[[], Response]
InstanceHandler = Callable[[str], Response]


@dataclass(frozen=True)
class Operation:
    """One operation `$name` on `rtype` (None: the system level)."""

    rtype: str | None
    name: str  # with its leading "$"
    definition: str  # canonical URL of its OperationDefinition
    scope: tuple[str | None, str]  # (type whose SMART scope it needs, None = its own type; letters, "" = none)
    type_level: TypeHandler | None = None
    instance_level: InstanceHandler | None = None
    methods: tuple[str, ...] = ("GET", "POST")  # GET only when the operation changes nothing (affectsState false)


_REGISTRY: dict[tuple[str | None, str], Operation] = {}
_loaded = False


def register(op: Operation) -> Operation:
    key = (op.rtype, op.name)
    if key in _REGISTRY and _REGISTRY[key] != op:
        raise ValueError(f"operation {op.name} on {op.rtype} registered twice")
    _REGISTRY[key] = op
    return op


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from . import modules  # noqa: F401  (each module registers its operations on import)


def find(rtype: str | None, name: str) -> Operation | None:
    _load()
    return _REGISTRY.get((rtype, name))


def for_type(rtype: str | None) -> list[Operation]:
    _load()
    return sorted((op for op in _REGISTRY.values() if op.rtype == rtype), key=lambda op: op.name)


def by_name(name: str) -> list[Operation]:
    _load()
    return [op for op in _REGISTRY.values() if op.name == name]
