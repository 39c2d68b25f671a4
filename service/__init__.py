"""IOP FHIR R4 service: create_app() wires config → database → FHIR blueprint → error handlers → CLI."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask

__version__ = "0.1.0"


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app; `overrides` replace IOP_* settings (tests pass them)."""
    from . import audit, cli, clients, config, db, errors, guide, outbox, rest, smart

    app = Flask(__name__, instance_relative_config=False)
    settings = config.load(app, overrides)
    logging.basicConfig(level=settings["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    database = db.init_app(app)
    guide.init_app(app, database)
    app.register_blueprint(rest.bp)
    smart.init_app(app)  # the token endpoint and SMART discovery (outside the FHIR blueprint: OAuth errors, plain JSON)
    errors.init_app(app)
    audit.init_app(app)  # after the error handlers: it audits the responses they render
    cli.init_app(app)
    clients.init_app(app)
    outbox.init_app(app)
    return app
