"""SMART Backend Services, client side: access tokens for our requests to an external FHIR server.

The client_credentials grant with a private_key_jwt assertion (RFC 7523) signed RS384 or ES384 by PyJWT (no
hand-written crypto): iss = sub = our client_id, aud = the token URL, a fresh random jti, exp 4 minutes ahead
(the spec allows at most 5). The access token is kept until TOKEN_MARGIN seconds before it expires (half its
lifetime for a token that lives under a minute), then a new one is fetched; a 401 from the FHIR server drops it
and the request is sent once more with a fresh one (fhirclient.FhirClient.request). The token URL is the Endpoint's, or discovered once from
[base]/.well-known/smart-configuration. See: https://hl7.org/fhir/smart-app-launch/backend-services.html
"""
from __future__ import annotations

import os
import stat
import threading
import time
import uuid
from collections.abc import Callable

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .endpoints import CredentialError, Endpoint, private, secret
from .fhirclient import FhirClientError

ASSERTION_LIFETIME = 240  # seconds; the spec: exp no more than five minutes in the future
TOKEN_MARGIN = 30.0  # seconds before expiry at which a cached token is replaced
DEFAULT_TOKEN_LIFETIME = 300  # when the server omits expires_in (RFC 6749 §5.1 makes it RECOMMENDED only)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenError(FhirClientError):
    """The authorization server refused us or could not be reached; `.oauth_error` holds its RFC 6749 `error` code."""

    def __init__(self, message: str, *, response: requests.Response | None = None, oauth_error: str | None = None,
                 retryable: bool = False):
        super().__init__(message, response=response)
        self.oauth_error = oauth_error
        self._retryable = retryable

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self._retryable


class BackendAuth:
    """Access tokens for one Endpoint, cached until shortly before they expire; safe to share between threads."""

    def __init__(self, endpoint: Endpoint, session: requests.Session, *, clock: Callable[[], float] = time.time):
        if endpoint.smart is None:
            raise ValueError(f"Endpoint/{endpoint.id} has no SMART Backend Services settings")
        self.endpoint, self.smart, self.session, self.clock = endpoint, endpoint.smart, session, clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._token_url = endpoint.smart.token_url
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ fhirclient.Auth
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def renew(self) -> bool:
        with self._lock:
            self._token = None
        return True

    # ------------------------------------------------------------------ tokens
    def token(self) -> str:
        """A valid access token: the cached one, or a new one from the token endpoint."""
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                self._token, self._renew_at = self._fetch()
            return self._token

    def _fetch(self) -> tuple[str, float]:
        url = self.token_url()
        form = {"grant_type": "client_credentials", "scope": self.smart.scope, "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(url)}
        began = self.clock()
        body = _post_form(self.session, url, form, self.endpoint.timeout)
        token, lifetime = body.get("access_token"), body.get("expires_in", DEFAULT_TOKEN_LIFETIME)
        if not isinstance(token, str) or not token or str(body.get("token_type", "")).lower() != "bearer":
            raise TokenError(f"POST {url}: the answer holds no bearer access_token")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise TokenError(f"POST {url}: expires_in must be a positive number of seconds, not {lifetime!r}")
        # counted from before the request (never later than the server's clock); a short-lived token is kept half its life
        return token, began + float(lifetime) - min(TOKEN_MARGIN, float(lifetime) / 2)

    def assertion(self, audience: str) -> str:
        """A signed client assertion for one token request (a new jti each time: servers refuse a replay)."""
        now = int(self.clock())
        claims = {"iss": self.smart.client_id, "sub": self.smart.client_id, "aud": audience, "iat": now,
                  "exp": now + ASSERTION_LIFETIME, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._private_key(), algorithm=self.smart.alg, headers={"kid": self.smart.kid, "typ": "JWT"})

    def token_url(self) -> str:
        """The Endpoint's token URL, else the one the server's SMART configuration names (read once)."""
        if self._token_url is None:
            self._token_url = discover(self.session, self.endpoint)
        return self._token_url

    def _private_key(self) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        pem = secret(self.endpoint, self.smart.key_env) if self.smart.key_env else _read_key_file(self.endpoint, self.smart.key_file or "")
        where = self.smart.key_env or self.smart.key_file
        try:
            key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
        except (ValueError, TypeError) as err:  # never echo the content: it may be a secret of another kind
            raise CredentialError(f"{where} named by Endpoint/{self.endpoint.id} is not an unencrypted PEM private key") from err
        if self.smart.alg == "RS384" and isinstance(key, rsa.RSAPrivateKey):
            return key
        if self.smart.alg == "ES384" and isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
            return key
        raise CredentialError(f"{where} named by Endpoint/{self.endpoint.id} is not a key for {self.smart.alg}"
                              " (RS384: RSA; ES384: EC P-384)")


def discover(session: requests.Session, endpoint: Endpoint) -> str:
    """token_endpoint from [base]/.well-known/smart-configuration; it must be https (or loopback)."""
    url = f"{endpoint.address}/.well-known/smart-configuration"
    try:
        response = session.get(url, headers={"Accept": "application/json"}, timeout=endpoint.timeout, allow_redirects=False)
        body = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError) as err:
        raise TokenError(f"GET {url}: {type(err).__name__}: {err}", retryable=isinstance(err, requests.RequestException)) from err
    found = body.get("token_endpoint") if isinstance(body, dict) else None
    if not isinstance(found, str) or not found.startswith(("https://", "http://")) or not private(found):
        raise TokenError(f"GET {url}: HTTP {response.status_code}, no usable https token_endpoint; set tokenUrl on Endpoint/{endpoint.id}",
                         response=response, retryable=response.status_code >= 500)
    return found


def _post_form(session: requests.Session, url: str, form: dict, timeout: tuple[float, float]) -> dict:
    try:
        response = session.post(url, data=form, headers={"Accept": "application/json"}, timeout=timeout, allow_redirects=False)
    except requests.RequestException as err:
        raise TokenError(f"POST {url}: {type(err).__name__}: {err}", retryable=True) from err
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        detail = body.get("error_description") if isinstance(body, dict) else None
        retryable = response.status_code >= 500 or response.status_code == 429
        raise TokenError(f"POST {url}: HTTP {response.status_code} {error or ''} {detail or ''}".rstrip(), response=response,
                         oauth_error=error if isinstance(error, str) else None, retryable=retryable)
    return body


def _read_key_file(endpoint: Endpoint, path: str) -> bytes:
    """The PEM file, only when it is a regular file of our own user that nobody else may read (as ssh requires)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise CredentialError(f"the key file named by Endpoint/{endpoint.id} cannot be opened ({err.strerror})") from err
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise CredentialError(f"the key file named by Endpoint/{endpoint.id} must be a regular file of this service's user "
                                  "that no other user may read (chmod 600)")
        return handle.read(64 * 1024)

