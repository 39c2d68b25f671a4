"""Operator commands for the exchange with external FHIR servers: `flask --app wsgi sync pull | endpoints`."""
from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import false, select

from . import cursors, exchange, sync_pull
from .db import get_db
from .tables import resource

sync_group = AppGroup("sync", help="Sync with partner EHRs (docs/exchange.md).")


@sync_group.command("pull")
@click.option("--endpoint", "endpoint_id", default=None, help="Only this Endpoint id (default: every Endpoint that pulls).")
def pull(endpoint_id: str | None) -> None:
    """Poll each pulled resource type once: read what changed since the cursor and write it here; exit 1 if a poll stopped."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    results = sync_pull.pull(app, endpoint_id)
    for result in results:
        click.echo(result.summary())
    if not results:
        click.echo("no Endpoint pulls anything (endpoint-sync extension with direction pull)")
    if any(r.stopped for r in results):
        raise SystemExit(1)


@sync_group.command("endpoints")
def list_endpoints() -> None:
    """Each Endpoint on this server: what it pushes and pulls (and its cursors), or why it cannot be used."""
    db = get_db()
    with db.read() as conn:
        rows = conn.execute(select(resource.c.content).where(resource.c.type == "Endpoint", resource.c.deleted == false())).scalars()
        docs = [json.loads(text) for text in rows if text]
    for doc in sorted(docs, key=lambda d: str(d.get("id"))):
        try:
            t = exchange.target(doc)
        except exchange.ConfigError as err:
            click.echo(f"Endpoint/{doc.get('id')}\tunusable: {err}")
            continue
        pulled = ", ".join(f"{r} (cursor {cursors.read(db, sync_pull.cursor_name(t.endpoint_id, r)) or '-'})" for r in t.pull)
        click.echo(f"{t.reference}\t{t.address}\trecipient {t.organization or '-'}\tpush [{', '.join(sorted(t.push))}] mode {t.mode}"
                   f"\tpull [{pulled}]")
    if not docs:
        click.echo("no Endpoints")
