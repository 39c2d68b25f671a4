"""Operator commands on `flask --app wsgi …`: db upgrade, examples load."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import delete, insert, select, text

from . import dates, interactions, messaging, transaction
from .db import get_db
from .errors import FhirError
from .tables import sync_cursor
from .wire import Prefer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def init_app(app: Flask) -> None:
    from . import audit_cli, outbox_cli  # flask audit verify; flask outbox run|list|show|retry
    from .sandbox import sandbox_group  # flask sandbox check URL
    from .sync_cli import sync_group  # flask sync pull | endpoints

    app.cli.add_command(db_group)
    app.cli.add_command(examples_group)
    app.cli.add_command(outbox_cli.outbox_group)
    app.cli.add_command(audit_cli.audit_group)
    app.cli.add_command(referrals_group)
    app.cli.add_command(sandbox_group)
    app.cli.add_command(sync_group)


db_group = AppGroup("db", help="Database schema commands.")


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations up to head."""
    get_db().upgrade()
    click.echo("database schema is at head")


@db_group.command("analyze")
def db_analyze() -> None:
    """Refresh the query planner's statistics (ANALYZE); run it after a bulk load."""
    analyze()
    click.echo("planner statistics refreshed (ANALYZE)")


def analyze() -> None:
    """ANALYZE the whole database. PostgreSQL plans searches from these statistics; on freshly loaded tables without
    them (autovacuum off or not yet run) a search with a long reference list picked nested loops (0.9 s instead of
    milliseconds, measured). SQLite's planner uses them too (sqlite_stat1)."""
    with get_db().write() as conn:
        conn.execute(text("ANALYZE"))


examples_group = AppGroup("examples", help="Example data.")


@examples_group.command("load")
@click.option("--path", type=click.Path(exists=True, path_type=Path), default=EXAMPLES, show_default=True)
def examples_load(path: Path) -> None:
    """Load examples/: resources with an id by PUT, Bundles as batch/transaction; a file loaded before is skipped.

    The journey Bundles are a patient's history in order (the referral Task goes requested → … → completed), so
    replaying an old step would be an illegal Task transition; each file is loaded once (by content hash).
    """
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    loaded = 0
    for file in files:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if _loaded(file.name) == digest:
            click.echo(f"{file.name}: unchanged, loaded before")
            continue
        click.echo(f"{file.name}: {load_file(file)}")
        _mark_loaded(file.name, digest)
        loaded += 1
    if loaded:
        analyze()  # a bulk load: the planner gets statistics for the new rows now, not when autovacuum gets to them
        click.echo(f"{loaded} file(s) loaded; planner statistics refreshed (ANALYZE)")


def _loaded(name: str) -> str | None:
    with get_db().read() as conn:
        return conn.execute(select(sync_cursor.c.value).where(sync_cursor.c.name == f"examples:{name}")).scalar()


def _mark_loaded(name: str, digest: str) -> None:
    key = f"examples:{name}"
    with get_db().write() as conn:
        conn.execute(delete(sync_cursor).where(sync_cursor.c.name == key))
        conn.execute(insert(sync_cursor).values(name=key, value=digest, updated_at=dates.utcnow()))


def load_file(file: Path) -> str:
    """Load one example file through the normal write path; returns a one-line summary."""
    body = json.loads(file.read_text())
    settings = current_app.config["IOP"]
    options = interactions.Options(settings["BASE_URL"] or "http://localhost/fhir", settings["MAX_JSON_DEPTH"],
                                   current_app.extensions["iop.required_profiles"])
    try:
        if body.get("resourceType") == "Bundle" and body.get("type") in ("batch", "transaction"):
            response = json.loads(transaction.process(get_db(), body, Prefer("minimal"), options, settings))
            return ", ".join(e["response"]["status"] for e in response.get("entry", []))
        if body.get("resourceType") == "Bundle" and body.get("type") == "message":  # as POST [base]/$process-message
            header = json.loads(messaging.process(get_db(), body, options, settings))["entry"][0]["resource"]
            return f"{header['response']['code']}, focus {header['focus'][0]['reference']}"
        result = interactions.run(get_db(), lambda unit: interactions.update(unit, body["resourceType"], body["id"], body), options)
        return f"{result.status} {body['resourceType']}/{body['id']} version {result.stored.version}"
    except FhirError as err:
        raise click.ClickException(f"{file.name}: {err.issues[0].diagnostics} at {err.issues[0].expression}") from None


referrals_group = AppGroup("referrals", help="Referral intake.")


@referrals_group.command("pull")
@click.option("--endpoint", "endpoint_id", help="Poll only this Endpoint id (default: every active referral source).")
@click.option("--once", is_flag=True, help="Poll once and exit (cron, tests); default: poll every IOP_PULL_INTERVAL seconds.")
def referrals_pull(endpoint_id: str | None, once: bool) -> None:
    """Pull referral Tasks owned by our program from referring FHIR servers (Endpoint resources); see README."""
    from . import referral_pull

    if not once:
        referral_pull.loop(current_app._get_current_object(), endpoint_id)  # type: ignore[attr-defined]
        return
    results = referral_pull.pull(current_app._get_current_object(), endpoint_id)  # type: ignore[attr-defined]
    for result in results:
        click.echo(result.summary())
    if not results:
        click.echo("no active referral-source Endpoint on this server")
    if any(r.stopped for r in results):
        raise SystemExit(1)
