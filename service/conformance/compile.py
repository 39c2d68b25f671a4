"""Compile a StructureDefinition's differential into a tree of element rules (the supported subset).

The differential says what a profile adds to its base; base R4 rules are checked by validation.py
and a parent profile of ours is compiled and applied on its own. An element definition field
outside profiles/README.md's list raises ProfileError at start-up.
See: https://hl7.org/fhir/R4/profiling.html and elementdefinition.html
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from .fhirpath import compile_fast

BASE = "http://hl7.org/fhir/StructureDefinition/"
UNSET: Any = object()
# Element definition fields that only document; they carry no rule.
DOCUMENTATION = {"id", "path", "short", "definition", "comment", "requirements", "alias", "mapping", "example", "label",
                 "mustSupport", "isSummary", "isModifier", "isModifierReason", "condition", "code", "meaningWhenMissing",
                 "orderMeaning", "extension", "representation"}
RULES = {"sliceName", "min", "max", "type", "binding", "constraint", "slicing"}


class ProfileError(RuntimeError):
    """A profile uses a construct the validator does not support (refused at start-up)."""


@dataclass(frozen=True)
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    check: Any  # compiled FHIRPath


@dataclass(frozen=True)
class Discriminator:
    type: str  # value | pattern | type (choice elements only)
    path: str


@dataclass
class Rule:
    """What a profile requires of one element (or one slice of it)."""

    id: str
    name: str
    min: int | None = None
    max: int | None = None  # None: unbounded or not constrained
    max_set: bool = False
    types: tuple[str, ...] | None = None
    target_profiles: tuple[str, ...] | None = None
    ext_profile: str | None = None
    fixed: Any = UNSET
    pattern: Any = UNSET
    binding: tuple[str, str] | None = None  # (strength, value set url)
    invariants: list[Invariant] = field(default_factory=list)
    discriminators: tuple[Discriminator, ...] = ()
    closed: bool = False
    slices: dict[str, Rule] = field(default_factory=dict)
    children: dict[str, Rule] = field(default_factory=dict)
    type_slices: dict[str, Rule] = field(default_factory=dict)  # choice element: type code -> rule


def compile_differential(sd: dict) -> Rule:
    """The rule tree of a profile or extension definition."""
    root = Rule(sd["type"], sd["type"])
    for element in sd["differential"]["element"]:
        unknown = set(element) - DOCUMENTATION - RULES - {k for k in element if k.startswith(("fixed", "pattern"))}
        if unknown:
            raise ProfileError(f"{sd['url']}: {element['id']} uses {sorted(unknown)}, which the validator does not support")
        _apply(_node(root, element["id"], sd["url"]), element, sd["url"])
    return root


def _segments(element_id: str) -> list[str]:
    # "ServiceRequest.code.coding:snomed.system": split on dots outside slice names
    return re.findall(r"[^.:]+(?::[^.]+)?", element_id)


def _node(root: Rule, element_id: str, url: str) -> Rule:
    node = root
    for segment in _segments(element_id)[1:]:
        name, _, slice_name = segment.partition(":")
        child = node.children.setdefault(name, Rule(f"{node.id}.{name}", name))
        if not slice_name:
            node = child
        elif name.endswith("[x]") and slice_name.startswith(name[:-3]):
            type_code = _choice_type(name[:-3], slice_name)
            node = child.type_slices.setdefault(type_code, Rule(f"{child.id}:{slice_name}", name))
        else:
            if "/" in slice_name:
                raise ProfileError(f"{url}: re-slicing ({element_id}) is not supported")
            node = child.slices.setdefault(slice_name, Rule(f"{child.id}:{slice_name}", name))
    return node


def _choice_type(base: str, slice_name: str) -> str:
    suffix = slice_name[len(base):]
    primitive = suffix[:1].lower() + suffix[1:]
    return primitive if primitive in _PRIMITIVES else suffix


_PRIMITIVES = {"boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary", "instant", "date",
               "dateTime", "time", "code", "oid", "id", "markdown", "unsignedInt", "positiveInt", "uuid"}


def _apply(rule: Rule, element: dict, url: str) -> None:
    if "min" in element:
        rule.min = element["min"]
    if "max" in element:
        rule.max, rule.max_set = (None if element["max"] == "*" else int(element["max"])), True
    if "type" in element:
        _types(rule, element["type"], url, element["id"])
    for key, value in element.items():
        if key.startswith("fixed"):
            rule.fixed = value
        elif key.startswith("pattern"):
            rule.pattern = value
    if "binding" in element:
        _binding(rule, element["binding"], url, element["id"])
    for c in element.get("constraint", []):
        if c.get("source", url) == url and c.get("severity") in ("error", "warning"):
            rule.invariants.append(_invariant(c, url))
    if "slicing" in element:
        _slicing(rule, element["slicing"], url, element["id"])


def _types(rule: Rule, types: list[dict], url: str, element_id: str) -> None:
    rule.types = tuple(t["code"] for t in types)
    targets = [p for t in types for p in t.get("targetProfile", [])]
    if targets:
        rule.target_profiles = tuple(targets)
    profiles = [p for t in types for p in t.get("profile", [])]
    if profiles and rule.types == ("Extension",) and len(profiles) == 1:
        rule.ext_profile = profiles[0]
    elif profiles:
        raise ProfileError(f"{url}: {element_id} constrains a type to a profile ({profiles}); only extension slices may")


def _binding(rule: Rule, binding: dict, url: str, element_id: str) -> None:
    strength, value_set = binding.get("strength"), binding.get("valueSet")
    if strength in ("required", "extensible"):
        if not value_set:
            raise ProfileError(f"{url}: {element_id} has a {strength} binding without a value set")
        rule.binding = (strength, value_set.split("|")[0])


def _invariant(c: dict, url: str) -> Invariant:
    try:
        check = fhirpath_compile(c["expression"], models["r4"])
        trial = {"resourceType": "Basic"}
        check(trial, {"resource": trial, "rootResource": trial})  # fhirpathpy parses lazily: a trial run surfaces syntax errors
    except Exception as err:  # fhirpathpy raises bare KeyError/ValueError/its own errors on bad syntax
        raise ProfileError(f"{url}: invariant {c['key']} cannot be compiled: {err!r}") from None
    # The same results from closures ~10x faster (fhirpath.py); fhirpathpy for what the subset does not cover.
    return Invariant(c["key"], c["severity"], c.get("human", c["key"]), c["expression"], compile_fast(check.parsedPath) or check)


def _slicing(rule: Rule, slicing: dict, url: str, element_id: str) -> None:
    discriminators = []
    for d in slicing.get("discriminator", []):
        choice_type = d["type"] == "type" and d["path"] == "$this" and rule.name.endswith("[x]")
        if d["type"] not in ("value", "pattern") and not choice_type:
            raise ProfileError(f"{url}: {element_id} is sliced by a '{d['type']}' discriminator, which is not supported")
        if not re.fullmatch(r"\$this|[a-zA-Z]+(\.[a-zA-Z]+)*", d["path"]):
            raise ProfileError(f"{url}: {element_id} discriminator path '{d['path']}' is not supported")
        discriminators.append(Discriminator(d["type"], d["path"]))
    rule.discriminators = tuple(discriminators)
    rule.closed = slicing.get("rules") == "closed"


def target_type(profile_url: str, types_by_profile: dict[str, str]) -> str:
    """The resource type a Reference target profile stands for."""
    if profile_url.startswith(BASE):
        return profile_url[len(BASE):]
    if profile_url in types_by_profile:
        return types_by_profile[profile_url]
    raise ProfileError(f"Reference target profile {profile_url} is neither a base type nor one of ours")
