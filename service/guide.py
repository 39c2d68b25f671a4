"""Start-up of our implementation guide: compile profiles/, check IOP_REQUIRED_PROFILES, and store the guide.

The StructureDefinitions, ValueSets and CodeSystems of profiles/ are written through the normal
write path (PUT by id, a no-op when unchanged), so the API serves, searches and versions them like
any resource; clients cannot change them (interactions._check_managed).
"""
from __future__ import annotations

from flask import Flask

from . import conformance, interactions
from .config import ConfigError
from .db import Database


def init_app(app: Flask, db: Database) -> None:
    """Compile the guide (an unsupported construct stops start-up), then store its resources."""
    registry = conformance.registry()
    app.extensions["iop.required_profiles"] = required_profiles(app.config["IOP"]["REQUIRED_PROFILES"], registry)
    store(db, registry)


def required_profiles(setting: str, registry: conformance.Registry) -> dict[str, tuple[str, ...]]:
    """Parse "Type=profile|profile,Type=profile" (profile ids or URLs of ours) into type -> profile URLs."""
    out: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in setting.split(","))):
        rtype, _, names = part.partition("=")
        urls = tuple(_profile_url(name.strip(), registry) for name in names.split("|") if name.strip())
        wrong = [u for u in urls if registry.profiles[u].type != rtype.strip()]
        if not urls or wrong:
            raise ConfigError(f"IOP_REQUIRED_PROFILES: '{part}' must name profiles of ours on {rtype.strip()}")
        out[rtype.strip()] = urls
    return out


def _profile_url(name: str, registry: conformance.Registry) -> str:
    for url, profile in registry.profiles.items():
        if name in (url, profile.id):
            return url
    raise ConfigError(f"IOP_REQUIRED_PROFILES names '{name}', which is not a profile in profiles/")


def store(db: Database, registry: conformance.Registry) -> None:
    """Write the guide's conformance resources (unchanged ones make no new version)."""
    options = interactions.Options(manage_conformance=True)
    for resource in registry.resources:
        interactions.run(db, _writer(resource), options)


def _writer(resource: dict):
    def work(unit: interactions.Unit) -> interactions.Result:
        return interactions.update(unit, resource["resourceType"], resource["id"], resource)
    return work
