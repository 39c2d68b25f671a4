"""Settings: DEFAULTS, then IOP_* environment variables, then test overrides; validated once at start-up."""
from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from marshmallow import RAISE, Schema, ValidationError, fields, validate

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": "sqlite:///instance/iop.db",
    "AUTH": "on",
    "TOKEN_SECRET": None,  # HS256 secret of access tokens; unset: one drawn at random, stored in the database
    "TOKEN_LIFETIME": 300,  # seconds an access token lives (at most 300)
    "BASE_URL": None,
    "MAX_BODY_BYTES": 32 * 1024 * 1024,
    "MAX_JSON_DEPTH": 64,
    "MAX_BUNDLE_ENTRIES": 10000,
    "PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 1000,
    "MAX_INCLUDES": 1000,
    "AUTO_MIGRATE": True,
    "LOG_LEVEL": "INFO",
    "DB_POOL_SIZE": 5,
    "REQUIRED_PROFILES": "",
    "PULL_INTERVAL": 900,  # seconds between referral polls in loop mode (Gravity: SHOULD NOT poll more often than every 15 min)
    "PULL_MAX_RPS": 5.0,  # requests per second to one referring server, at most
    "PULL_PAGE_SIZE": 50,  # _count of the referral Task search
    "OUTBOX_WORKER": "off",  # on: deliver notifications from a thread of each service process (docs/subscriptions.md)
    "OUTBOX_MAX_ATTEMPTS": 10,
    "OUTBOX_BACKOFF_SECONDS": 5.0,  # first retry within this, doubling per attempt (full jitter)
    "OUTBOX_MAX_BACKOFF_SECONDS": 1800.0,
    "OUTBOX_TIMEOUT_SECONDS": 10.0,  # read timeout of a notification POST (a Subscription's backport-timeout overrides it)
    "OUTBOX_POLL_SECONDS": 2.0,
    "OUTBOX_BATCH": 50,  # messages per delivery round
    "CAREPLAN_REVIEW_DAYS": 30,  # an active treatment plan is due for review this many days after its last review (docs/careplans.md)
    "OUTBOX_LEASE_SECONDS": None,  # how long a claimed message is left alone; default: longer than the longest delivery (~93 s)
}
# Settings that only tools read (the test suite's database); allowed in the environment, unused here.
TOOL_SETTINGS = {"TEST_DATABASE_URL"}
# Secrets named by data (e.g. an Endpoint's bearer token variable): neither settings nor reported as unknown.
SECRET_PREFIX = "IOP_SECRET_"


class ConfigSchema(Schema):
    """The IOP_* settings; see the configuration table in README.md."""

    class Meta:
        unknown = RAISE

    DATABASE_URL = fields.String(required=True, validate=validate.Regexp(r"^(sqlite|postgresql)(\+\w+)?://"))
    AUTH = fields.String(required=True, validate=validate.OneOf(["on", "off"]))
    TOKEN_SECRET = fields.String(allow_none=True, validate=validate.Length(min=32))
    TOKEN_LIFETIME = fields.Integer(validate=validate.Range(min=1, max=300))
    BASE_URL = fields.Url(allow_none=True, require_tld=False, schemes={"http", "https"})
    MAX_BODY_BYTES = fields.Integer(validate=validate.Range(min=1024))
    MAX_JSON_DEPTH = fields.Integer(validate=validate.Range(min=8, max=512))
    MAX_BUNDLE_ENTRIES = fields.Integer(validate=validate.Range(min=1))
    PAGE_SIZE = fields.Integer(validate=validate.Range(min=1))
    MAX_PAGE_SIZE = fields.Integer(validate=validate.Range(min=1))
    MAX_INCLUDES = fields.Integer(validate=validate.Range(min=0))
    AUTO_MIGRATE = fields.Boolean()
    LOG_LEVEL = fields.String(validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]))
    DB_POOL_SIZE = fields.Integer(validate=validate.Range(min=1, max=100))
    REQUIRED_PROFILES = fields.String(validate=validate.Regexp(r"^([A-Za-z]+=[^,=]+)?(,[A-Za-z]+=[^,=]+)*$"))
    PULL_INTERVAL = fields.Integer(validate=validate.Range(min=1))
    PULL_MAX_RPS = fields.Float(validate=validate.Range(min=0.01, max=1000))
    PULL_PAGE_SIZE = fields.Integer(validate=validate.Range(min=1, max=1000))
    OUTBOX_WORKER = fields.String(validate=validate.OneOf(["on", "off"]))
    OUTBOX_MAX_ATTEMPTS = fields.Integer(validate=validate.Range(min=1, max=100))
    OUTBOX_BACKOFF_SECONDS = fields.Float(validate=validate.Range(min=0.001, max=3600))
    OUTBOX_MAX_BACKOFF_SECONDS = fields.Float(validate=validate.Range(min=0.001, max=7 * 86400))
    OUTBOX_TIMEOUT_SECONDS = fields.Float(validate=validate.Range(min=0.1, max=60))
    OUTBOX_POLL_SECONDS = fields.Float(validate=validate.Range(min=0.05, max=3600))
    OUTBOX_BATCH = fields.Integer(validate=validate.Range(min=1, max=10000))
    CAREPLAN_REVIEW_DAYS = fields.Integer(validate=validate.Range(min=1, max=365))
    OUTBOX_LEASE_SECONDS = fields.Float(allow_none=True, validate=validate.Range(min=1, max=3600))


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the service refuses to start."""


def load(app: Flask, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate DEFAULTS ← IOP_* environment ← overrides into app.config["IOP"] (fail fast)."""
    raw = dict(DEFAULTS)
    raw.update(_environment())
    raw.update(overrides or {})
    try:
        settings = ConfigSchema().load(raw)
    except ValidationError as err:
        raise ConfigError(f"invalid IOP_* settings: {err.messages}") from err
    if settings["BASE_URL"]:
        settings["BASE_URL"] = settings["BASE_URL"].rstrip("/")
    app.config["IOP"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]
    return settings


def _environment() -> dict[str, Any]:
    """IOP_* variables with the prefix removed; unknown names are reported, not silently used."""
    env = {k[4:]: v for k, v in os.environ.items() if k.startswith("IOP_") and not k.startswith(SECRET_PREFIX)}
    for name in sorted(set(env) - set(DEFAULTS) - TOOL_SETTINGS):
        log.warning("ignoring unknown setting IOP_%s", name)
    return {k: v for k, v in env.items() if k in DEFAULTS}
