"""App factory, configuration, authorization default, migrations and the operator CLI."""
from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from helpers import EXAMPLES, assert_outcome, count_rows, patient, post
from service import create_app
from service.config import ConfigError
from service.tables import metadata


@pytest.mark.parametrize("setting", [{"AUTH": "maybe"}, {"DATABASE_URL": "mysql://x"}, {"PAGE_SIZE": 0},
                                     {"MAX_JSON_DEPTH": "deep"}, {"BASE_URL": "not a url"}])
def test_invalid_settings_fail_fast(setting, tmp_path):
    with pytest.raises(ConfigError):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **setting})


def test_environment_settings_are_read_with_the_iop_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("IOP_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("IOP_PAGE_SIZE", "7")
    app = create_app()
    assert app.config["IOP"]["PAGE_SIZE"] == 7
    assert app.config["IOP"]["AUTH"] == "on"  # authorization is on unless IOP_AUTH=off
    app.extensions["iop.db"].dispose()


def test_auth_is_on_by_default_and_only_metadata_is_public(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/auth.db"})
    client = app.test_client()
    assert client.get("/fhir/metadata").status_code == 200
    resp = client.get("/fhir/Patient")
    assert_outcome(resp, 401, "login")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert_outcome(post(client, "Patient", patient()), 401)
    app.extensions["iop.db"].dispose()


def test_migrations_create_exactly_the_declared_schema(app):
    """The Alembic head and service/tables.py describe the same schema."""
    with app.extensions["iop.db"].engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_a_new_database_starts_by_applying_migrations(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/new/fresh.db", "AUTH": "off"})
    assert post(app.test_client(), "Patient", patient()).status_code == 201
    app.extensions["iop.db"].dispose()


def test_examples_load_command_is_idempotent(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["examples", "load"])
    assert first.exit_code == 0, first.output
    client = app.test_client()
    for path in EXAMPLES.glob("*.json"):
        doc = json.loads(path.read_text())
        if doc["resourceType"] != "Bundle":
            assert client.get(f"/fhir/{doc['resourceType']}/{doc['id']}").status_code == 200, path.name
    assert "journey-10-discharge.json" in first.output and "journey-10-discharge.json: 2" in first.output
    assert "planner statistics refreshed (ANALYZE)" in first.output
    assert analysed(app)  # the planner has statistics for what was just loaded
    stored = count_rows(app)
    second = runner.invoke(args=["examples", "load"])
    assert second.exit_code == 0, second.output
    assert count_rows(app) == stored  # conditional creates and PUTs by id: a second load creates nothing
    assert "ANALYZE" not in second.output  # nothing loaded, nothing to analyse


def test_db_analyze_command(app):
    result = app.test_cli_runner().invoke(args=["db", "analyze"])
    assert result.exit_code == 0 and "ANALYZE" in result.output
    assert analysed(app)


def analysed(app) -> bool:
    """Whether the resource table has planner statistics (PostgreSQL: last_analyze; SQLite: sqlite_stat1)."""
    with app.extensions["iop.db"].read() as conn:
        if conn.dialect.name == "postgresql":
            return conn.execute(text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'resource'")).scalar()
        return conn.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'resource'")).scalar() > 0


def test_db_upgrade_command(app):
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0 and "head" in result.output
