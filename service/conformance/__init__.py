"""Our implementation guide at run time: profiles, extensions and value sets from profiles/, compiled once.

`registry()` loads profiles/fsh-generated/resources at start-up and refuses any construct the
validator does not support (profiles/README.md). `validate()` checks a resource against the
profiles it claims in meta.profile (and those a program requires for its type).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import Issue
from .check import UNSET, Checker, expected_at
from .compile import ProfileError, Rule, compile_differential, target_type
from .terminology import Terminology, TerminologyError

__all__ = ["CANONICAL", "Profile", "ProfileError", "Registry", "registry"]

CANONICAL = "https://iop.example.org/fhir"
RESOURCES = Path(__file__).resolve().parents[2] / "profiles" / "fsh-generated" / "resources"


@dataclass(frozen=True)
class Profile:
    """A compiled profile or extension definition."""

    url: str
    id: str
    name: str
    type: str
    parent: str | None  # the URL of a parent profile of ours
    rules: Rule
    kind: str  # "resource" | "complex-type"


class Registry:
    """Compiled profiles, expanded value sets and the conformance resources behind them."""

    def __init__(self, resources: list[dict]):
        self.resources = resources
        try:
            self.terminology = Terminology(resources)
        except TerminologyError as err:
            raise ProfileError(str(err)) from None
        sds = [r for r in resources if r["resourceType"] == "StructureDefinition"]
        self.profiles = {sd["url"]: _compile(sd) for sd in sds}
        self.types = {p.url: p.type for p in self.profiles.values()}
        for profile in self.profiles.values():
            self._check_loadable(profile)

    @classmethod
    def load(cls, folder: Path = RESOURCES) -> Registry:
        """Read every conformance resource of a folder (none: an empty registry)."""
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return cls([json.loads(f.read_text()) for f in files])

    def by_type(self) -> dict[str, list[str]]:
        """Resource type -> URLs of our profiles on it."""
        out: dict[str, list[str]] = {}
        for p in self.profiles.values():
            if p.kind == "resource":
                out.setdefault(p.type, []).append(p.url)
        return out

    def validate(self, resource: dict, profiles: list[str]) -> list[Issue]:
        """Issues of `resource` against each of `profiles` (ours) and their parents."""
        issues: list[Issue] = []
        for url in profiles:
            profile: Profile | None = self.profiles[url]
            while profile is not None:
                checker = Checker(profile.name, self._extension_rules, self.terminology.members, self._target_type)
                issues += checker.run(profile.rules, resource)
                profile = self.profiles.get(profile.parent) if profile.parent else None
        return issues

    def claimed(self, resource: dict) -> list[str]:
        """The profiles of ours that a resource claims in meta.profile (unknown ones are not ours to check)."""
        meta = resource["meta"] if isinstance(resource.get("meta"), dict) else {}
        return [p.split("|")[0] for p in meta.get("profile", []) if isinstance(p, str) and p.split("|")[0] in self.profiles]

    def _extension_rules(self, url: str) -> Rule:
        return self.profiles[url].rules

    def _target_type(self, url: str) -> str:
        return target_type(url, self.types)

    def _check_loadable(self, profile: Profile) -> None:
        """Refuse at load what the checks could not honour: unknown targets, value sets, extensions, discriminators."""
        if profile.parent and profile.parent not in self.profiles:
            raise ProfileError(f"{profile.url}: parent {profile.parent} is neither a base R4 type nor one of our profiles")
        for rule in _walk(profile.rules):
            try:
                for url in rule.target_profiles or ():
                    target_type(url, self.types)
                if rule.binding:
                    self.terminology.expand(rule.binding[1])
            except TerminologyError as err:
                raise ProfileError(f"{profile.url}: {rule.id}: {err}") from None
            if rule.ext_profile and rule.ext_profile not in self.profiles:
                raise ProfileError(f"{profile.url}: {rule.id} uses extension {rule.ext_profile}, which is not defined here")
            for slice_name, slice_rule in rule.slices.items():
                for d in rule.discriminators:
                    if expected_at(slice_rule, d.path) is UNSET:
                        raise ProfileError(f"{profile.url}: slice {slice_name} of {rule.id} fixes no value at '{d.path}'")


def _compile(sd: dict) -> Profile:
    if sd.get("derivation") != "constraint":
        raise ProfileError(f"{sd['url']}: only constraint profiles are supported (not {sd.get('derivation')})")
    base = sd.get("baseDefinition", "")
    parent = None if base.startswith("http://hl7.org/fhir/StructureDefinition/") else base
    return Profile(sd["url"], sd["id"], sd.get("title") or sd["name"], sd["type"], parent, compile_differential(sd), sd["kind"])


def _walk(rule: Rule):
    yield rule
    for child in [*rule.children.values(), *rule.slices.values(), *rule.type_slices.values()]:
        yield from _walk(child)


@cache
def registry() -> Registry:
    """The registry of profiles/ (loaded and compiled once per process)."""
    return Registry.load()
