"""Check an instance against compiled profile rules: cardinality, fixed/pattern, types, bindings, slices, invariants.

Semantics follow https://hl7.org/fhir/R4/profiling.html: a pattern is contained in the value, a fixed
value equals it; slices are matched by their discriminators; an invariant holds when its FHIRPath
evaluates to exactly `true` (as the HL7 and Medplum validators do).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import Issue
from ..indexer import reference_type
from .compile import UNSET, Discriminator, Rule

Lookup = Callable[[str], Any]  # profile or value-set URL -> compiled object


class Checker:
    """One check of one resource against one profile (and the extension definitions it uses)."""

    def __init__(self, profile_name: str, rules_of: Lookup, members_of: Lookup, type_of_target: Lookup):
        self.profile_name = profile_name
        self.rules_of = rules_of  # extension url -> Rule tree
        self.members_of = members_of  # value set url -> frozenset of "system|code"
        self.type_of_target = type_of_target  # target profile url -> resource type
        self.issues: list[Issue] = []
        self.resource: dict = {}

    def issue(self, severity: str, code: str, text: str, path: str) -> None:
        self.issues.append(Issue(severity, code, f"{text} (profile {self.profile_name})", path))

    def run(self, root: Rule, resource: dict) -> list[Issue]:
        self.resource = resource
        self.value(root, resource, resource["resourceType"])
        return self.issues

    # -- one element: all its values ---------------------------------------------------------
    def element(self, rule: Rule, values: list, path: str, many: bool = True) -> None:
        self.cardinality(rule, len(values), path)
        for i, v in enumerate(values):
            self.value(rule, v, f"{path}[{i}]" if many and len(values) > 1 or rule.slices else path)
        if rule.slices or rule.closed:
            self.slices(rule, values, path)

    def cardinality(self, rule: Rule, count: int, path: str) -> None:
        if rule.min and count < rule.min:
            self.issue("error", "required", f"{rule.id} requires at least {rule.min}, found {count}", path)
        if rule.max_set and rule.max is not None and count > rule.max:
            self.issue("error", "structure", f"{rule.id} allows at most {rule.max}, found {count}", path)

    # -- one value -----------------------------------------------------------------------------
    def value(self, rule: Rule, v: Any, path: str) -> None:
        if rule.fixed is not UNSET and v != rule.fixed:
            self.issue("error", "value", f"{rule.id} must be exactly {_show(rule.fixed)}", path)
        if rule.pattern is not UNSET and not contains(v, rule.pattern):
            self.issue("error", "value", f"{rule.id} must match {_show(rule.pattern)}", path)
        if rule.binding:
            self.binding(rule, v, path)
        if rule.target_profiles and isinstance(v, dict):
            self.target(rule, v, path)
        if rule.ext_profile and isinstance(v, dict):
            self.value(self.rules_of(rule.ext_profile), v, path)
        for inv in rule.invariants:
            self.invariant(inv, v, path)
        if isinstance(v, dict):
            self.children(rule, v, path)

    def children(self, rule: Rule, obj: dict, path: str) -> None:
        for name, child in rule.children.items():
            if name.endswith("[x]"):
                self.choice(child, obj, path, name[:-3])
            else:
                raw = obj.get(name)
                values = raw if isinstance(raw, list) else ([] if raw is None else [raw])
                self.element(child, values, f"{path}.{name}", isinstance(raw, list))

    def choice(self, rule: Rule, obj: dict, path: str, base: str) -> None:
        keys = [k for k in obj if k.startswith(base) and k[len(base):len(base) + 1].isupper()]
        self.cardinality(rule, len(keys), f"{path}.{base}[x]")
        for key in keys:
            type_code = key[len(base):]
            allowed = {t.lower() for t in rule.types} if rule.types else None
            if allowed is not None and type_code.lower() not in allowed:
                self.issue("error", "structure", f"{rule.id} must be one of {', '.join(rule.types or ())}, not {type_code}",
                           f"{path}.{key}")
            self.value(rule, obj[key], f"{path}.{key}")
            for slice_type, slice_rule in rule.type_slices.items():
                if slice_type.lower() == type_code.lower():
                    self.value(slice_rule, obj[key], f"{path}.{key}")

    # -- bindings, references, invariants ----------------------------------------------------------
    def binding(self, rule: Rule, v: Any, path: str) -> None:
        strength, url = rule.binding  # type: ignore[misc]
        members = self.members_of(url)
        if isinstance(v, str):
            candidates = [c for c in members if c.split("|", 1)[1] == v]
            ok, coded = bool(candidates), True
        elif isinstance(v, dict):
            codings = v.get("coding", []) if "coding" in v or "text" in v else [v]
            coded = any(isinstance(c, dict) and c.get("code") for c in codings)
            ok = any(f"{c.get('system', '')}|{c.get('code')}" in members for c in codings if isinstance(c, dict))
        else:
            return
        if ok or (strength == "extensible" and not coded):
            return
        severity = "error" if strength == "required" else "warning"
        self.issue(severity, "code-invalid", f"{rule.id} has no code from the {strength} value set {url}", path)

    def target(self, rule: Rule, ref: dict, path: str) -> None:
        literal = ref.get("reference")
        if not isinstance(literal, str) or literal.startswith(("#", "urn:")):
            return
        actual = reference_type({"reference": literal})
        allowed = {self.type_of_target(p) for p in rule.target_profiles or ()}
        if actual not in allowed:
            self.issue("error", "value", f"{rule.id} must reference {' or '.join(sorted(allowed))}, not {actual}", f"{path}.reference")

    def invariant(self, inv: Any, v: Any, path: str) -> None:
        try:
            result = inv.check(v, {"resource": self.resource, "rootResource": self.resource})
        except Exception as err:  # a FHIRPath runtime error is a failed check, reported as such
            self.issue("error", "invariant", f"{inv.key} could not be evaluated: {err}", path)
            return
        if result != [True]:
            self.issue("error" if inv.severity == "error" else "warning", "invariant", f"{inv.key}: {inv.human}", path)

    # -- slicing -----------------------------------------------------------------------------
    def slices(self, rule: Rule, values: list, path: str) -> None:
        members: dict[str, list[tuple[int, Any]]] = {name: [] for name in rule.slices}
        for i, v in enumerate(values):
            name = next((n for n, s in rule.slices.items() if self.in_slice(rule.discriminators, s, v)), None)
            if name is not None:
                members[name].append((i, v))
            elif rule.closed:
                self.issue("error", "structure", f"{rule.id} is closed: this item matches none of its slices", f"{path}[{i}]")
        for name, slice_rule in rule.slices.items():
            self.cardinality(slice_rule, len(members[name]), path)
            for i, v in members[name]:
                self.value(slice_rule, v, f"{path}[{i}]")

    def in_slice(self, discriminators: tuple[Discriminator, ...], slice_rule: Rule, v: Any) -> bool:
        return all(contains(_at(v, d.path), expected_at(slice_rule, d.path)) for d in discriminators)


def expected_at(slice_rule: Rule, path: str) -> Any:
    """The value a slice fixes (or patterns) at a discriminator path; UNSET when it fixes none."""
    if path == "$this":
        return slice_rule.fixed if slice_rule.fixed is not UNSET else slice_rule.pattern
    if path == "url" and slice_rule.ext_profile:
        return slice_rule.ext_profile
    node: Rule | None = slice_rule
    for segment in path.split("."):
        node = node.children.get(segment) if node else None
    if node is None:
        return UNSET
    return node.fixed if node.fixed is not UNSET else node.pattern


def _at(v: Any, path: str) -> Any:
    if path == "$this":
        return v
    for segment in path.split("."):
        if isinstance(v, list):
            v = [x.get(segment) for x in v if isinstance(x, dict)]
        else:
            v = v.get(segment) if isinstance(v, dict) else None
    return v


def contains(value: Any, pattern: Any) -> bool:
    """FHIR pattern matching: every element of the pattern is present in the value."""
    if pattern is UNSET:
        return False
    if isinstance(value, list) and not isinstance(pattern, list):
        return any(contains(v, pattern) for v in value)
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and contains(value[k], p) for k, p in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(contains(v, p) for v in value) for p in pattern)
    return value == pattern


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
