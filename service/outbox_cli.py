"""Operator commands for the outbox: `flask --app wsgi outbox run | list | show | retry`."""
from __future__ import annotations

import json
import signal
import threading

import click
from flask import current_app
from flask.cli import AppGroup

from . import dates, outbox
from .db import get_db

outbox_group = AppGroup("outbox", help="Deliver and inspect queued notifications and sync messages (the outbox).")


@outbox_group.command("run")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option("--batch", type=click.IntRange(1, 10000), default=None, help="Messages per round (default IOP_OUTBOX_BATCH).")
def run(once: bool, batch: int | None) -> None:
    """Deliver due notifications; without --once keep polling until SIGTERM or Ctrl-C (the message in flight is finished)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if once:
        counts = outbox.deliver_due(app, limit=batch)
        click.echo(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing due")
        return
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    click.echo("delivering; stop with SIGTERM or Ctrl-C")
    outbox.run(app, stopping, batch=batch)


@outbox_group.command("list")
@click.option("--status", type=click.Choice(outbox.STATUSES), default=None, help="Only messages in this status.")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
def list_messages(status: str | None, limit: int) -> None:
    """Messages in queue order: pk, status, attempts, kind, target, next attempt, last error."""
    rows = outbox.messages(get_db(), status, limit)
    for m in rows:
        error = (m.last_error or "").replace("\n", " ")[:100]
        click.echo(f"{m.pk}\t{m.status}\t{m.attempts}\t{m.kind}\t{m.target}\t{dates.instant(m.next_attempt_at)}\t{error}")
    if not rows:
        click.echo("no messages" + (f" with status {status}" if status else ""))


@outbox_group.command("show")
@click.argument("pk", type=int)
def show(pk: int) -> None:
    """One message: its fields, last error and payload."""
    m = outbox.get(get_db(), pk)
    if m is None:
        raise click.ClickException(f"no outbox message {pk}")
    for name in ("pk", "status", "channel", "kind", "target", "ordering_key", "dedupe_key", "attempts", "created_at",
                 "next_attempt_at", "delivered_at", "last_error"):
        click.echo(f"{name}: {getattr(m, name)}")
    click.echo("payload:")
    click.echo(json.dumps(json.loads(m.payload), indent=2, ensure_ascii=False))


@outbox_group.command("retry")
@click.argument("pk", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="Every dead message.")
def retry(pk: int | None, all_dead: bool) -> None:
    """Make a dead, cancelled or held message, or every dead one, pending again with fresh attempts (a held one is
    checked again when it is sent)."""
    if (pk is None) == (not all_dead):
        raise click.UsageError("give a message PK or --all-dead (not both)")
    n = outbox.retry(get_db(), dates.utcnow(), pk)
    if pk is not None and n == 0:
        raise click.ClickException(f"outbox message {pk} is not dead, cancelled or held (see `flask outbox show {pk}`)")
    click.echo(f"{n} message{'s' if n != 1 else ''} pending again")
