"""The generated R4 tables (r4.json), loaded once: element models, bindings, search parameters.

r4.json is written by scripts/generate_definitions.py from the HL7 R4 definitions; never edit it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

TABLES_PATH = Path(__file__).with_name("r4.json")


@dataclass(frozen=True)
class Element:
    """One JSON key of a type: its FHIR type, cardinality, summary flag and reference targets."""

    type: str
    many: bool
    min: int
    summary: bool
    choice_of: str | None
    targets: tuple[str, ...] | None


@dataclass(frozen=True)
class SearchParam:
    """A search parameter compiled to JSON paths: [(steps, terminal type, implied system)]."""

    code: str
    type: str
    url: str
    paths: tuple[tuple[tuple, str, str | None], ...] = ()
    target: tuple[str, ...] = ()
    column: str | None = None
    special: str | None = None
    expression: str | None = None


@dataclass(frozen=True)
class Tables:
    """Read-only lookups over the generated R4 definitions."""

    resource_types: frozenset[str]  # R4 types that fhir.resources R4B also models: the ones we serve
    all_resource_types: frozenset[str]  # every R4 resource type (valid in references)
    types: dict[str, dict[str, Element]]
    required_bindings: dict[str, frozenset[str]]  # element path -> {"system|code"}
    binding_codes: dict[str, frozenset[str]]  # element path -> {"code"} (system-less check)
    binding_urls: dict[str, str]
    search_params: dict[str, dict[str, SearchParam]]
    patient_compartment: dict[str, tuple[str, ...]]
    summary_elements: dict[str, frozenset[str]] = field(default_factory=dict)
    mandatory_elements: dict[str, frozenset[str]] = field(default_factory=dict)
    required_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)  # non-choice elements with min > 0
    choice_groups: dict[str, tuple[tuple[str, tuple[str, ...], bool], ...]] = field(default_factory=dict)  # (base, keys, required)
    invariants: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = field(default_factory=dict)  # (key, FHIRPath, elements)

    def element(self, type_name: str, key: str) -> Element | None:
        """The element `key` of `type_name`, or None when R4 does not define it."""
        return self.types.get(type_name, {}).get(key)


def _element(spec: list) -> Element:
    type_, max_, min_, summary, choice_of, targets = spec
    return Element(type_, max_ != "1" and max_ != "0", min_, summary, choice_of, tuple(targets) if targets else None)


def _param(code: str, raw: dict) -> SearchParam:
    paths = tuple((tuple(p[0]), p[1], p[2] if len(p) > 2 else None) for p in raw.get("paths", []))
    return SearchParam(code, raw["type"], raw["url"], paths, tuple(raw.get("target", [])), raw.get("column"), raw.get("special"),
                       raw.get("expression"))


@cache
def tables() -> Tables:
    """Load and index r4.json (once per process)."""
    raw = json.loads(TABLES_PATH.read_text())
    types = {name: {key: _element(spec) for key, spec in els.items()} for name, els in raw["types"].items()}
    value_sets = raw["valueSets"]
    required = {path: frozenset(value_sets[url]) for path, url in raw["requiredBindings"].items()}
    codes = {path: frozenset(c.split("|", 1)[1] for c in members) for path, members in required.items()}
    params = {rtype: {code: _param(code, p) for code, p in table.items()} for rtype, table in raw["searchParams"].items()}
    params = _with_local(params)
    resource_types = frozenset(raw["resourceTypes"])
    summary = {t: frozenset(k for k, e in types[t].items() if e.summary) for t in resource_types}
    mandatory = {t: frozenset(k for k, e in types[t].items() if e.min > 0) for t in resource_types}
    required_keys = {name: tuple(k for k, e in els.items() if e.min > 0 and e.choice_of is None) for name, els in types.items()}
    choices = {name: _choice_groups(els) for name, els in types.items()}
    return Tables(
        resource_types=resource_types,
        all_resource_types=frozenset(raw["allResourceTypes"]),
        types=types,
        required_bindings=required,
        binding_codes=codes,
        binding_urls=dict(raw["requiredBindings"]),
        search_params=params,
        patient_compartment={t: tuple(p) for t, p in raw["compartments"]["Patient"].items()},
        summary_elements=summary,
        mandatory_elements=mandatory,
        required_keys=required_keys,
        choice_groups=choices,
        invariants={t: tuple((k, e, tuple(names)) for k, e, names in found) for t, found in raw["invariants"].items()},
    )


def _with_local(params: dict[str, dict[str, SearchParam]]) -> dict[str, dict[str, SearchParam]]:
    """Add our own search parameters (service/search/local_params.py: the program directory, Location near)."""
    from ..search.local_params import merged  # imported late: service.search imports this module

    return merged(params)


def _choice_groups(elements: dict[str, Element]) -> tuple[tuple[str, tuple[str, ...], bool], ...]:
    groups: dict[str, list[str]] = {}
    for key, el in elements.items():
        if el.choice_of:
            groups.setdefault(el.choice_of, []).append(key)
    return tuple((base, tuple(keys), any(elements[k].min > 0 for k in keys)) for base, keys in groups.items())
