"""Who is asking, and what they may do: the access context of one request.

The authorization layer (service/auth.py) builds it from the access token; everything that decides
what to show or allow (scopes on each interaction, 42 CFR Part 2 disclosure, the audit trail) reads it
from here, and the write path carries it in `interactions.Options.access`. With IOP_AUTH=off (the one
development setting) every request is the DEVELOPMENT context: all scopes, inside the program.

Scopes follow SMART App Launch v2 (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
`<patient|user|system>/<Type|*>.<cruds>`; v1 `.read`/`.write`/`.*` are read as `.rs`/`.cud`/`.cruds`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import g, has_request_context

LETTERS = "cruds"
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(\*|read|write|[cruds]+)(\?.*)?$")
_V1 = {"*": "cruds", "read": "rs", "write": "cud"}


@dataclass(frozen=True)
class Scope:
    context: str  # patient | user | system
    rtype: str  # a resource type or *
    letters: str  # subset of cruds, in order
    query: str | None = None  # granular scope (?param=value): not granted by this server


def parse_scope(text: str) -> Scope | None:
    """One SMART scope, or None for what is not a resource scope (openid, launch, …) or is malformed."""
    m = _SCOPE.match(text)
    if not m:
        return None
    letters = _V1.get(m.group(3), m.group(3))
    if "".join(c for c in LETTERS if c in letters) != letters:  # v2: an in-order subset of cruds
        return None
    return Scope(m.group(1), m.group(2), letters, m.group(4)[1:] if m.group(4) else None)


def parse_scopes(text: str) -> tuple[Scope, ...]:
    return tuple(s for s in (parse_scope(part) for part in text.split()) if s is not None)


@dataclass(frozen=True)
class Access:
    """The access context of a request."""

    client_id: str | None  # None: auth is off (development)
    scopes: tuple[Scope, ...] = ()
    organization: str | None = None  # "Organization/x" the client acts for
    internal: bool = False  # the program's own staff tools: inside the 42 CFR Part 2 program
    purpose: str = "TREAT"  # v3-ActReason purpose of use of this request
    granted: frozenset[tuple[str, str]] = field(default=frozenset(), compare=False)

    def allows(self, rtype: str, letter: str) -> bool:
        """Whether a scope grants `letter` (one of cruds) on `rtype`."""
        return any(s.query is None and s.rtype in ("*", rtype) and letter in s.letters for s in self.scopes)

    @property
    def scope_text(self) -> str:
        return " ".join(f"{s.context}/{s.rtype}.{s.letters}" for s in self.scopes)


DEVELOPMENT = Access(None, (Scope("system", "*", LETTERS),), None, True)


def current() -> Access:
    """The access context of the request being served (DEVELOPMENT outside a request: CLI, workers, tests)."""
    if has_request_context():
        return g.get("iop_access", DEVELOPMENT)
    return DEVELOPMENT


def set_current(access: Access) -> None:
    g.iop_access = access
