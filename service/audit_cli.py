"""Operator command `flask --app wsgi audit verify`: walk the audit trail's hash chain (service/audit_chain.py)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from . import audit, audit_chain
from .db import get_db

audit_group = AppGroup("audit", help="The audit trail (AuditEvent hash chain).")


@audit_group.command("verify")
def verify() -> None:
    """Check every link of the chain; exit 1 at the first broken one, else print OK and the count."""
    audit.flush()  # this process's own waiting read audits first
    with get_db().read() as conn:
        verdict = audit_chain.verify(conn)
    if verdict.ok:
        click.echo(f"OK: {verdict.count} audit events, chain intact")
        return
    where = f" at link {verdict.seq}" if verdict.seq else ""
    click.echo(f"BROKEN{where} (after {verdict.count} good links): {verdict.reason}", err=True)
    raise SystemExit(1)
