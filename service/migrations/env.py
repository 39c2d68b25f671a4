"""Alembic environment: runs on the connection that service.db.Database.upgrade() passes in."""
from alembic import context

from service.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through service.db.Database.upgrade() or `flask --app wsgi db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
