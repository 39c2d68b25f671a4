"""FhirError family and its one rendering as an OperationOutcome (the only error currency).

Every layer raises a FhirError subclass; the HTTP status derives from the class. Issue codes are
from http://hl7.org/fhir/issue-type. See: https://hl7.org/fhir/R4/operationoutcome.html
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json; charset=utf-8"


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue."""

    severity: str
    code: str
    diagnostics: str
    expression: str | None = None

    def to_json(self) -> dict:
        out: dict = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = [self.expression]
        return out


class FhirError(Exception):
    """An error that becomes an OperationOutcome with `status`."""

    status = 400
    code = "invalid"

    def __init__(self, diagnostics: str, *, expression: str | None = None, code: str | None = None,
                 issues: list[Issue] | None = None, headers: dict | None = None):
        super().__init__(diagnostics)
        self.issues = issues or [Issue("error", code or self.code, diagnostics, expression)]
        self.headers = headers or {}

    def prefixed(self, prefix: str) -> FhirError:
        """The same error with every expression placed under `prefix` (e.g. Bundle.entry[2].resource)."""
        self.issues = [Issue(i.severity, i.code, i.diagnostics, _join(prefix, i.expression)) for i in self.issues]
        return self


def _join(prefix: str, expression: str | None) -> str:
    if not expression:
        return prefix
    head, _, rest = expression.partition(".")
    if head[:1].isupper() and "[" not in head:
        # "Patient.name[0]" under "Bundle.entry[1].resource" → "Bundle.entry[1].resource.name[0]"
        return f"{prefix}.{rest}" if rest else prefix
    return f"{prefix}.{expression}"


class BadRequest(FhirError):
    status, code = 400, "invalid"


class Unauthorized(FhirError):
    status, code = 401, "login"


class Forbidden(FhirError):
    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class NotAcceptable(FhirError):
    status, code = 406, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class Gone(FhirError):
    status, code = 410, "deleted"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class Unprocessable(FhirError):
    status, code = 422, "processing"


class RetryableConflict(Exception):
    """A concurrent writer won a race (unique key or serialization); the unit may be retried."""


def outcome(issues: list[Issue]) -> dict:
    """An OperationOutcome resource for `issues`."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def informational(text: str) -> dict:
    """An OperationOutcome holding one informational issue (e.g. for Prefer: return=OperationOutcome)."""
    return outcome([Issue("information", "informational", text)])


def outcome_response(status: int, issues: list[Issue], headers: dict | None = None) -> Response:
    body = json.dumps(outcome(issues), ensure_ascii=False)
    return Response(body, status=status, headers=headers or {}, content_type=FHIR_JSON)


_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported", 429: "throttled"}


def init_app(app: Flask) -> None:
    """Render FhirError, HTTPException and any other Exception as an OperationOutcome."""

    @app.errorhandler(FhirError)
    def _fhir(err: FhirError) -> Response:
        return outcome_response(err.status, err.issues, err.headers)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Response:
        status = err.code or 500
        code = _HTTP_CODES.get(status, "invalid" if status < 500 else "exception")
        headers = dict(err.get_headers())
        headers.pop("Content-Type", None)
        return outcome_response(status, [Issue("error", code, err.description or err.name)], headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error")
        return outcome_response(500, [Issue("fatal", "exception", "Internal server error; the request was not applied.")])
