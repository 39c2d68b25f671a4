"""The client registry: SMART Backend Services clients an operator registered, their keys and allowed scopes.

A client authenticates at the token endpoint with a JWT signed by its private key (private_key_jwt);
we hold only its public keys, inline (a JWKS) or at a JWKS URL that we fetch and cache briefly.
https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-smart-backend-service-communicating-public-keys
Operator commands: `flask --app wsgi clients register|list|disable`.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click
import requests
from flask import Flask
from flask.cli import AppGroup
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema
from sqlalchemy import Connection, insert, select, update

from . import access, dates
from . import standing as _standing
from .db import get_db
from .tables import auth_client

ACTIVE, DISABLED = "active", "disabled"
# The key types and curves of the two signing algorithms SMART requires servers to support (RS384, ES384).
KEY_TYPES = {"RSA", "EC"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}
JWKS_TTL = 60.0  # seconds a fetched JWKS is used before it is fetched again
JWKS_REFETCH_AFTER = 5.0  # an unknown kid refetches a JWKS at most this often (a client rotating its keys)
JWKS_TIMEOUT = (3.05, 5.0)  # connect, read


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    jwks: dict | None
    jwks_url: str | None
    scopes: str
    organization: str | None
    internal: bool
    status: str

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


# ------------------------------------------------------------------------------- reading
def get(conn: Connection, client_id: str) -> Client | None:
    row = conn.execute(select(auth_client).where(auth_client.c.client_id == client_id)).first()
    if row is None:
        return None
    return Client(row.client_id, row.name, json.loads(row.jwks) if row.jwks else None, row.jwks_url, row.scopes,
                  row.organization, bool(row.internal), row.status)


def find(client_id: str) -> Client | None:
    with get_db().read() as conn:
        return get(conn, client_id)


def standing(client_id: str) -> tuple[bool, str | None, bool] | None:
    """(active, organization, internal) of a client, or None: the check of every authorized request (standing.py)."""
    return _standing.lookup(get_db(), client_id)


def all_clients(conn: Connection) -> list[Client]:
    ids = conn.execute(select(auth_client.c.client_id).order_by(auth_client.c.created, auth_client.c.client_id)).scalars().all()
    return [c for c in (get(conn, i) for i in ids) if c is not None]


# ------------------------------------------------------------------------------- keys
class KeyError_(Exception):
    """The client's keys could not be had (JWKS URL unreachable or not a JWKS)."""


_cache: dict[str, tuple[float, dict]] = {}
_cache_lock = threading.Lock()


def keys(client: Client, kid: str) -> dict | None:
    """The client's public JWK with this kid, or None."""
    if client.jwks is not None:
        return _by_kid(client.jwks, kid)
    assert client.jwks_url
    jwks, fetched = _cached(client.jwks_url)
    key = _by_kid(jwks, kid)
    if key is None and time.monotonic() - fetched > JWKS_REFETCH_AFTER:
        jwks, _ = _cached(client.jwks_url, refresh=True)
        key = _by_kid(jwks, kid)
    return key


def _by_kid(jwks: dict, kid: str) -> dict | None:
    return next((k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid), None)


def _cached(url: str, refresh: bool = False) -> tuple[dict, float]:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(url)
    if hit and not refresh and now - hit[0] < JWKS_TTL:
        return hit[1], hit[0]
    jwks = fetch_jwks(url)
    with _cache_lock:
        _cache[url] = (now, jwks)
    return jwks, now


def fetch_jwks(url: str) -> dict:
    try:
        resp = requests.get(url, timeout=JWKS_TIMEOUT, headers={"Accept": "application/json"}, allow_redirects=False)
        resp.raise_for_status()
        jwks = resp.json()
    except (requests.RequestException, ValueError) as err:
        raise KeyError_(f"the client's JWKS URL could not be read ({type(err).__name__})") from err
    problem = jwks_problem(jwks)
    if problem:
        raise KeyError_(f"the client's JWKS URL does not serve a usable JWKS: {problem}")
    return jwks


def jwks_problem(jwks: object) -> str | None:
    """Why this is not a public JWKS we can use, or None."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return 'a JWKS is a JSON object with a non-empty "keys" array'
    for i, key in enumerate(jwks["keys"]):
        if not isinstance(key, dict) or key.get("kty") not in KEY_TYPES or not isinstance(key.get("kid"), str):
            return f"key {i}: each key needs kty RSA or EC and a kid"
        if PRIVATE_MEMBERS & set(key):
            return f"key {i} ({key['kid']}) holds private key material: register the public key only"
    return None


# ------------------------------------------------------------------------------- registering
_ORG = r"^Organization/[A-Za-z0-9\-.]{1,64}$"


class RegisterSchema(Schema):
    """An operator's `clients register` input."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    jwks = fields.Dict(load_default=None)
    jwks_url = fields.Url(load_default=None, schemes={"http", "https"}, require_tld=False)
    scope = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    organization = fields.String(load_default=None, validate=validate.Regexp(_ORG, error="expected Organization/<id>"))
    internal = fields.Boolean(load_default=False)

    @validates("scope")
    def _scope(self, value: str, **_) -> None:
        for part in value.split():
            scope = access.parse_scope(part)
            if scope is None or scope.context != "system" or scope.query is not None:
                raise ValidationError(f"'{part}' is not a SMART v2 system scope (system/<Type|*>.<cruds>)")

    @validates("jwks_url")
    def _https(self, value: str | None, **_) -> None:
        # A JWKS URL SHALL be https (SMART); plain http only to this machine (development, tests).
        if value and urlsplit(value).scheme == "http" and urlsplit(value).hostname not in ("localhost", "127.0.0.1", "::1"):
            raise ValidationError("a JWKS URL must use https")

    @validates("jwks")
    def _jwks(self, value: dict | None, **_) -> None:
        problem = value is not None and jwks_problem(value)
        if problem:
            raise ValidationError(problem)

    @validates_schema
    def _one_key_source(self, data: dict, **_) -> None:
        if (data.get("jwks") is None) == (data.get("jwks_url") is None):
            raise ValidationError("give exactly one of a JWKS (--jwks-file) or a JWKS URL (--jwks-url)")


def register(conn: Connection, data: dict) -> str:
    """Store a client from operator input (validated here); returns its new client_id."""
    clean = RegisterSchema().load(data)
    client_id = secrets.token_hex(16)  # hex: never starts with "-", which a command line would take for an option
    scopes = " ".join(dict.fromkeys(clean["scope"].split()))
    conn.execute(insert(auth_client).values(
        client_id=client_id, name=clean["name"], jwks=json.dumps(clean["jwks"]) if clean["jwks"] else None,
        jwks_url=clean["jwks_url"], scopes=scopes, organization=clean["organization"], internal=clean["internal"],
        status=ACTIVE, created=dates.utcnow()))
    _standing.changed(conn)
    return client_id


def set_status(conn: Connection, client_id: str, status: str) -> bool:
    """Change a client's status; every process forgets what it knew about clients when the transaction commits."""
    done = conn.execute(update(auth_client).where(auth_client.c.client_id == client_id).values(status=status)).rowcount == 1
    _standing.changed(conn)
    return done


# ------------------------------------------------------------------------------- commands
clients_group = AppGroup("clients", help="SMART Backend Services clients: register, list, disable.")


def init_app(app: Flask) -> None:
    app.cli.add_command(clients_group)


@clients_group.command("register")
@click.option("--name", required=True, help="Who the client is, e.g. the referring hospital's EHR.")
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The client's public keys (JWKS JSON).")
@click.option("--jwks-url", help="Where the client publishes its public keys (https).")
@click.option("--scope", required=True, help='Allowed scopes, e.g. "system/Task.cruds system/*.rs".')
@click.option("--organization", help="Organization/<id> the client acts for.")
@click.option("--internal", is_flag=True, help="The program's own staff tools (inside the 42 CFR Part 2 program).")
def register_command(name: str, jwks_file: Path | None, jwks_url: str | None, scope: str, organization: str | None,
                     internal: bool) -> None:
    """Register a client; prints its client_id."""
    data = {"name": name, "jwks_url": jwks_url, "scope": scope, "organization": organization, "internal": internal,
            "jwks": _read_jwks(jwks_file) if jwks_file else None}
    try:
        with get_db().write() as conn:
            client_id = register(conn, data)
    except ValidationError as err:
        raise click.UsageError(f"invalid client: {err.messages}") from err
    click.echo(client_id)


def _read_jwks(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise click.UsageError(f"{path}: not a JSON file ({err})") from err


@clients_group.command("list")
def list_command() -> None:
    """The registered clients: id, status, name, organization, scopes."""
    with get_db().read() as conn:
        for c in all_clients(conn):
            keys_from = c.jwks_url or "inline JWKS"
            flags = " internal" if c.internal else ""
            click.echo(f"{c.client_id}\t{c.status}{flags}\t{c.name}\t{c.organization or '-'}\t{c.scopes}\t{keys_from}")


@clients_group.command("disable")
@click.argument("client_id")
def disable_command(client_id: str) -> None:
    """Disable a client: its access tokens stop working at once and it gets no new ones."""
    with get_db().write() as conn:
        if not set_status(conn, client_id, DISABLED):
            raise click.UsageError(f"no client {client_id}")
    click.echo(f"{client_id} disabled")
