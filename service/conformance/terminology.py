"""Value sets of our implementation guide, expanded once at start-up (and base R4 ones from r4.json).

Supported composition (profiles/README.md): included concepts listed by code, all concepts of one of
our CodeSystems, and other value sets. Anything else cannot be expanded locally and is a load error.
See: https://hl7.org/fhir/R4/valueset.html#compositions
"""
from __future__ import annotations

from dataclasses import dataclass

from ..definitions import tables


class TerminologyError(RuntimeError):
    """A value set of ours that the service cannot expand."""


@dataclass(frozen=True)
class Concept:
    system: str
    code: str
    display: str | None


class Terminology:
    """Expansions by value set URL: ours from profiles/, base R4 required ones from the generated tables."""

    def __init__(self, resources: list[dict]):
        self.code_systems = {r["url"]: r for r in resources if r["resourceType"] == "CodeSystem"}
        self.value_sets = {r["url"]: r for r in resources if r["resourceType"] == "ValueSet"}
        self.expansions: dict[str, tuple[Concept, ...]] = {}
        self._members: dict[str, frozenset[str]] = {}
        for url in self.value_sets:
            self.expand(url)

    def expand(self, url: str, depth: int = 0) -> tuple[Concept, ...]:
        """The concepts of a value set (ours, or a base R4 value set that the tables hold)."""
        url = url.split("|")[0]
        if url in self.expansions:
            return self.expansions[url]
        if url not in self.value_sets:
            return self._base(url)
        if depth > 10:
            raise TerminologyError(f"ValueSet {url} includes itself")
        concepts: dict[tuple[str, str], Concept] = {}
        for inc in self.value_sets[url].get("compose", {}).get("include", []):
            for c in self._include(url, inc, depth):
                concepts.setdefault((c.system, c.code), c)
        for exc in self.value_sets[url].get("compose", {}).get("exclude", []):
            for c in exc.get("concept", []):
                concepts.pop((exc.get("system", ""), c["code"]), None)
        self.expansions[url] = tuple(concepts.values())
        return self.expansions[url]

    def _include(self, url: str, inc: dict, depth: int) -> list[Concept]:
        if inc.get("filter"):
            raise TerminologyError(f"ValueSet {url}: include filters are not supported; list the concepts")
        out = [c for vs in inc.get("valueSet", []) for c in self.expand(vs, depth + 1)]
        system = inc.get("system")
        if system and "concept" in inc:
            out += [Concept(system, c["code"], c.get("display") or self._display(system, c["code"])) for c in inc["concept"]]
        elif system:
            if system not in self.code_systems:
                raise TerminologyError(f"ValueSet {url} includes all of {system}, which is not one of our CodeSystems")
            out += [Concept(system, code, display) for code, display in _all_concepts(self.code_systems[system].get("concept", []))]
        return out

    def _display(self, system: str, code: str) -> str | None:
        cs = self.code_systems.get(system)
        return dict(_all_concepts(cs.get("concept", []))).get(code) if cs else None

    def _base(self, url: str) -> tuple[Concept, ...]:
        members = _base_value_sets().get(url)
        if members is None:
            raise TerminologyError(f"ValueSet {url} is neither ours nor a base R4 value set the service holds")
        return tuple(Concept(*m.split("|", 1), None) for m in members)  # type: ignore[call-arg]

    def members(self, url: str) -> frozenset[str]:
        """The value set as "system|code" strings (computed once per value set)."""
        if url not in self._members:
            self._members[url] = frozenset(f"{c.system}|{c.code}" for c in self.expand(url))
        return self._members[url]


def _all_concepts(concepts: list[dict]) -> list[tuple[str, str | None]]:
    out = []
    for c in concepts:
        out.append((c["code"], c.get("display")))
        out.extend(_all_concepts(c.get("concept", [])))
    return out


def _base_value_sets() -> dict[str, frozenset[str]]:
    t = tables()
    return {url: t.required_bindings[path] for path, url in t.binding_urls.items()}
