"""A small FHIR REST client for one remote server: one requests.Session, mandatory timeouts, a bounded request rate.

Errors (every one carries `.status`, `.response` and the remote's parsed `.outcome` when it sent one):

    FhirClientError            base class; `.retryable` says whether trying again later can help
    ├── FhirTransportError     no usable HTTP answer: connect/read timeout, connection refused, TLS, bad JSON (retryable)
    ├── FhirServerError        5xx from the remote (retryable)
    └── FhirRequestError       4xx: permanent, except 408 and 429 (retryable)

`.retry_after` gives the remote's Retry-After in seconds when it sent one (429, 503).

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
from typing import Protocol
from urllib.parse import urlsplit

import requests

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

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ interactions
    def capabilities(self) -> dict:
        """GET [base]/metadata."""
        return self.get("metadata")

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
        return _answer(method, url, response, content)

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


def _answer(method: str, url: str, response: requests.Response, content: bytes) -> dict:
    parsed = _json(content)
    outcome = parsed if parsed and parsed.get("resourceType") == "OperationOutcome" else None
    status = response.status_code
    if status >= 400:
        kind = FhirServerError if status >= 500 else FhirRequestError
        raise kind(f"{method} {_redact(url)}: HTTP {status}{_diagnostics(outcome)}", response=response, outcome=outcome)
    if status >= 300:
        raise FhirRequestError(f"{method} {_redact(url)}: HTTP {status} redirect not followed", response=response)
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
