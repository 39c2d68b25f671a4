"""A small FHIR REST client for one remote server: one requests.Session, mandatory timeouts, a bounded request rate.

Errors (every one carries `.status`, `.response` and the remote's parsed `.outcome` when it sent one):

    FhirClientError            base class; `.retryable` says whether trying again later can help
    ├── FhirTransportError     no usable HTTP answer: connect/read timeout, connection refused, TLS, bad JSON (retryable)
    ├── FhirServerError        5xx from the remote (retryable)
    └── FhirRequestError       4xx: permanent, except 408 and 429 (retryable)

`.retry_after` gives the remote's Retry-After in seconds when it sent one (429, 503).

The client adapts to what the remote states in its CapabilityStatement (read once per client, `client.support`,
service/remote_capabilities.py): `transaction(bundle)` sends ordered single requests when the server has no
transaction interaction, and `conditional_create` searches then creates when it has no conditional create
(service/fhir_fallback.py; neither fallback is atomic, see there).

Nothing is retried here (the caller decides: the referral pull stops a poll, the outbox backs off), with one
exception: a 401 answered to a request sent with a renewable credential (SMART Backend Services) is sent once more
with a fresh token. Credentials (a static token or an `auth` object) are sent only to URLs under `base_url`: a
`next` link elsewhere is refused with a FhirClientError, and redirects are not followed.
See: https://hl7.org/fhir/R4/http.html and https://hl7.org/fhir/R4/search.html#paging
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import requests

from . import remote_capabilities
from .remote_capabilities import Capabilities

DEFAULT_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds; requests waits forever without one
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_PAGES = 100
ACCEPT = "application/fhir+json"


class FhirClientError(Exception):
    """A request to the remote server failed."""

    retryable = False

    def __init__(self, message: str, *, response: requests.Response | None = None, outcome: dict | None = None):
        super().__init__(message)
        self.response = response
        self.outcome = outcome
        self.status = response.status_code if response is not None else None

    @property
    def retry_after(self) -> float | None:
        """Seconds the remote asked us to wait (Retry-After in seconds; an HTTP-date is not used)."""
        value = self.response.headers.get("Retry-After", "") if self.response is not None else ""
        return float(value) if value.strip().isdigit() else None


class FhirTransportError(FhirClientError):
    """No usable answer: timeout, refused connection, or a body that is not FHIR JSON."""

    retryable = True


class FhirServerError(FhirClientError):
    """The remote answered 5xx."""

    retryable = True


class FhirRequestError(FhirClientError):
    """The remote answered 4xx: our request (or our access) is wrong; 408 and 429 are worth retrying."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in (408, 429)


@dataclass(frozen=True)
class Reply:
    """A successful answer to a write: status, the resource when the server returned one, Location and ETag."""

    status: int
    resource: dict | None
    location: str | None = None
    etag: str | None = None

    def as_entry_response(self) -> dict:
        """A transaction-response entry (https://hl7.org/fhir/R4/bundle.html#transaction-response)."""
        response = {"status": str(self.status)} | ({"location": self.location} if self.location else {}) | (
            {"etag": self.etag} if self.etag else {})
        return {"response": response} | ({"resource": self.resource} if self.resource else {})


class Auth(Protocol):
    """A credential the client asks for headers before each request (service/backend_auth.py, endpoints.StaticToken)."""

    def headers(self) -> dict[str, str]: ...

    def renew(self) -> bool:
        """Drop the cached credential after a 401; True when a new one may be accepted (worth one more try)."""
        ...


class FhirClient:
    """FHIR interactions against one base URL, at most one request per `min_interval` seconds.

    Safe to share between threads: with a rate limit, requests to the remote take turns (one at a time).
    """

    def __init__(self, base_url: str, *, session: requests.Session | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 token: str | None = None, auth: Auth | None = None, min_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if not (isinstance(timeout, tuple) and len(timeout) == 2 and all(t and t > 0 for t in timeout)):
            raise ValueError("timeout must be (connect, read) seconds, both > 0: requests would otherwise wait forever")
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout
        self.min_interval = min_interval
        self._token = token
        self.auth = auth
        self._clock, self._sleep = clock, sleep
        self._ready_at = 0.0
        self._turn = threading.Lock()
        self._support: Capabilities | None = None

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ interactions
    def capabilities(self) -> dict:
        """GET [base]/metadata (each call asks again; `support` is the cached reading)."""
        return self.get("metadata")

    @property
    def support(self) -> Capabilities:
        """What the remote's CapabilityStatement states, fetched on first use and kept for this client's life."""
        if self._support is None:
            self._support = remote_capabilities.parse(self.capabilities())
        return self._support

    def create(self, resource: dict, *, if_none_exist: str | None = None) -> Reply:
        """POST [base]/Type (If-None-Exist when given: the server must support conditional create)."""
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        return self.send("POST", resource["resourceType"], body=resource, headers=headers)

    def update(self, resource: dict, *, if_match: str | None = None) -> Reply:
        """PUT [base]/Type/id (If-Match when given: a version-aware update)."""
        headers = {"If-Match": if_match} if if_match else {}
        return self.send("PUT", f"{resource['resourceType']}/{resource['id']}", body=resource, headers=headers)

    def delete(self, rtype: str, rid: str) -> Reply:
        """DELETE [base]/Type/id."""
        return self.send("DELETE", f"{rtype}/{rid}")

    def conditional_create(self, resource: dict, query: str) -> Reply:
        """Create unless `query` (e.g. "identifier=sys|val") matches; 200 with the match, 201 when created.

        Without conditional create on the remote: a search, then a create when nothing matched (not atomic:
        two writers may both create; service/fhir_fallback.py).
        """
        from . import fhir_fallback  # noqa: PLC0415 (fhir_fallback drives this client)

        if self.support.conditional_create(resource["resourceType"]):
            return self.create(resource, if_none_exist=query)
        return fhir_fallback.search_then_create(self, resource, query)

    def transaction(self, bundle: dict) -> dict:
        """POST a transaction Bundle; the transaction-response Bundle.

        Without transaction support on the remote: the entries one by one, in an order that creates what is
        referenced first (service/fhir_fallback.py); a failure part-way raises PartialTransactionError.
        """
        from . import fhir_fallback  # noqa: PLC0415

        if self.support.transaction:
            return self.request("POST", "", body=bundle)
        return fhir_fallback.one_by_one(self, bundle)

    def send(self, method: str, path_or_url: str, *, params: list[tuple[str, str]] | None = None, body: dict | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        """One request whose answer may have no body (201 with return=minimal, 204): status, resource, Location, ETag."""
        url = self._url(path_or_url)
        extra = {"Prefer": "return=representation"} if body is not None else {}
        extra.update(headers or {})
        response, content = self._send(method, url, params, body, extra)
        if response.status_code == 401 and self.auth is not None and self.auth.renew():
            response, content = self._send(method, url, params, body, extra)
        resource = _answer(method, url, response, content, body_required=False)
        return Reply(response.status_code, resource, response.headers.get("Location") or response.headers.get("Content-Location"),
                     response.headers.get("ETag"))

    def read(self, rtype: str, rid: str) -> dict:
        """GET [base]/Type/id."""
        return self.get(f"{rtype}/{rid}")

    def search(self, rtype: str, params: list[tuple[str, str]], *, max_pages: int = MAX_PAGES) -> Iterator[dict]:
        """The searchset Bundles of GET [base]/Type?params, following `next` links (at most `max_pages`)."""
        page = self.get(rtype, params)
        for _ in range(max_pages - 1):
            yield page
            link = next_link(page)
            if link is None:
                return
            page = self.get(link)
        yield page

    def get(self, path_or_url: str, params: list[tuple[str, str]] | None = None) -> dict:
        """GET a path under the base (or an absolute URL under it) and return the JSON resource."""
        return self.request("GET", path_or_url, params=params)

    def request(self, method: str, path_or_url: str, *, params: list[tuple[str, str]] | None = None, body: dict | None = None,
                headers: dict[str, str] | None = None) -> dict:
        """One HTTP request, rate-limited; the answer as a resource, or a FhirClientError."""
        url = self._url(path_or_url)
        response, content = self._send(method, url, params, body, headers or {})
        if response.status_code == 401 and self.auth is not None and self.auth.renew():
            response, content = self._send(method, url, params, body, headers or {})  # the token expired early or was revoked
        answer = _answer(method, url, response, content)
        assert answer is not None  # body_required
        return answer

    def _send(self, method: str, url: str, params: list[tuple[str, str]] | None, body: dict | None,
              extra: dict[str, str]) -> tuple[requests.Response, bytes]:
        headers = {"Accept": ACCEPT, **extra, **self._credentials()}
        if body is not None:
            headers["Content-Type"] = ACCEPT
        with self._turn if self.min_interval > 0 else contextlib.nullcontext():
            self._wait_turn()
            try:
                response = self.session.request(method, url, params=params, headers=headers, timeout=self.timeout, stream=True,
                                                data=None if body is None else json.dumps(body), allow_redirects=False)
                return response, _read_body(response)
            except requests.RequestException as err:
                raise FhirTransportError(f"{method} {_redact(url)}: {type(err).__name__}: {err}") from err
            finally:
                self._ready_at = self._clock() + self.min_interval  # spacing counts from the end of the previous answer

    def _credentials(self) -> dict[str, str]:
        if self.auth is not None:
            return self.auth.headers()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    # ------------------------------------------------------------------ helpers
    def _url(self, path_or_url: str) -> str:
        if not path_or_url:
            return self.base_url  # the system level: POST [base] for a transaction or batch
        if not path_or_url.startswith(("http://", "https://")):
            return f"{self.base_url}/{path_or_url.lstrip('/')}"
        if not is_under(path_or_url, self.base_url):
            raise FhirClientError(f"{_redact(path_or_url)} is not on {self.base_url}; refusing to follow it (check the remote's base URL)")
        return path_or_url

    def _wait_turn(self) -> None:
        delay = self._ready_at - self._clock()
        if delay > 0:
            self._sleep(delay)


def next_link(bundle: dict) -> str | None:
    """The `next` link of a searchset Bundle, if any."""
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def is_under(url: str, base_url: str) -> bool:
    """Whether `url` is on the same scheme, host and port as `base_url` and under its path."""
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower()) and (a.path + "/").startswith(b.path.rstrip("/") + "/")


def _read_body(response: requests.Response) -> bytes:
    """The body, refusing more than MAX_BODY_BYTES (a misbehaving remote cannot exhaust our memory)."""
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(64 * 1024):  # wraps urllib3 read errors as requests exceptions
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise requests.exceptions.ContentDecodingError(f"response body larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


def _answer(method: str, url: str, response: requests.Response, content: bytes, body_required: bool = True) -> dict | None:
    """The resource of a 2xx answer (None: no body, when allowed); a FhirClientError for anything else."""
    parsed = _json(content)
    outcome = parsed if parsed and parsed.get("resourceType") == "OperationOutcome" else None
    status = response.status_code
    if status >= 400:
        kind = FhirServerError if status >= 500 else FhirRequestError
        raise kind(f"{method} {_redact(url)}: HTTP {status}{_diagnostics(outcome)}", response=response, outcome=outcome)
    if status >= 300:
        raise FhirRequestError(f"{method} {_redact(url)}: HTTP {status} redirect not followed", response=response)
    if not body_required and not content.strip():
        return None
    if parsed is None or not isinstance(parsed.get("resourceType"), str):
        raise FhirTransportError(f"{method} {_redact(url)}: the answer is not a FHIR JSON resource", response=response)
    return parsed


def _json(content: bytes) -> dict | None:
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _diagnostics(outcome: dict | None) -> str:
    issues = (outcome or {}).get("issue") or []
    found = [i.get("diagnostics") or (i.get("details") or {}).get("text") for i in issues if isinstance(i, dict)]
    texts = [t for t in found if isinstance(t, str)]
    return f": {'; '.join(texts)[:500]}" if texts else ""


def _redact(url: str) -> str:
    """The URL without its query (search values can be identifiers of patients)."""
    return url.split("?", 1)[0]
