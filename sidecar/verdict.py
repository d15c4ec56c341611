"""A decision's answer, independent of the transport that carries it to the proxy.

The decision core (sidecar/authorization.py) returns an :class:`Allow` or a :class:`Denial`; the
gRPC adapter (sidecar/ext_authz_grpc.py) and the HTTP adapter (sidecar/ext_authz_http.py) only
encode it. So both transports give the same status, ``WWW-Authenticate``, JSON body and identity
headers for the same request: the values are computed here, once.

Speed: verdicts are built once and reused (a cached token's :class:`Allow` lives in the decision
cache; denies are kept in a bounded table), and each adapter stores its encoding on the verdict
(``grpc``/``http`` slots), so a repeated answer is an attribute load.
"""

from __future__ import annotations

import json

from .decision import Deny, Principal
from .settings import Settings

_MAX_CACHED_DENIES = 4096


def _quoted(text: str) -> str:
    # RFC 6750 §3: error_description and scope values exclude '"' and '\'.
    return "".join(c for c in text if c.isprintable() and c not in '"\\' and ord(c) < 0x7F)


class Allow:
    """Let the request through: set ``headers`` on it (overwriting any a client sent), remove
    ``remove``; ``metadata`` is for the proxy's logs (gRPC dynamic metadata)."""

    __slots__ = ("grpc", "headers", "http", "metadata", "remove")

    def __init__(self, headers: tuple[tuple[str, str], ...], remove: tuple[str, ...], metadata: dict[str, str]) -> None:
        self.headers = headers
        self.remove = remove
        self.metadata = metadata
        self.grpc: bytes | None = None  # the encodings, filled in by each adapter on first use
        self.http: bytes | None = None


class Denial:
    """Refuse the request with ``status``, ``headers`` and the JSON ``body``; ``rpc_code`` is the
    ``google.rpc.Code`` of the gRPC transport, ``metadata`` names the reason for the proxy's logs."""

    __slots__ = ("body", "grpc", "headers", "http", "metadata", "rpc_code", "status")

    def __init__(
        self, status: int, rpc_code: int, headers: tuple[tuple[str, str], ...], body: str, metadata: dict[str, str]
    ) -> None:
        self.status = status
        self.rpc_code = rpc_code
        self.headers = headers
        self.body = body
        self.metadata = metadata
        self.grpc: bytes | None = None
        self.http: bytes | None = None


Verdict = Allow | Denial


class Verdicts:
    """Builds verdicts from principals and denies, with this sidecar's header names and realm."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self.identity_headers = tuple(
            h
            for h in (
                settings.identity_header,
                settings.namespace_header,
                settings.scopes_header,
                settings.jti_header,
                settings.client_header,
            )
            if h
        )
        # Anonymous routes never forward identity headers a client made up.
        self.anonymous = Allow((), self.identity_headers, {})
        # Denies repeat (a client retrying, a token lacking a route's scope): build each once.
        self._denied: dict[Deny, Denial] = {}

    def allow(self, p: Principal) -> Allow:
        s = self._s
        scopes = " ".join(sorted(p.scopes))
        values = (
            (s.identity_header, p.identity),
            (s.namespace_header, p.namespace),
            (s.scopes_header, scopes),
            (s.jti_header, p.jti),
            # The token's client; for a client's own token (client_credentials) the caller, whose
            # identity header stays empty (removed): a client never passes for an identity.
            (s.client_header, p.client_id),
        )
        headers = tuple((name, value) for name, value in values if name and value)
        # An identity header with no value is removed: a client-sent one never reaches the upstream.
        remove = tuple(name for name, value in values if name and not value)
        if s.strip_token:
            remove += (s.token_header,)
        metadata = {
            "identity": p.identity,
            "namespace": p.namespace,
            "scopes": scopes,
            "jti": p.jti,
            "client_id": p.client_id,
        }
        return Allow(headers, remove, metadata)

    def deny(self, d: Deny) -> Denial:
        found = self._denied.get(d)
        if found is None:
            if len(self._denied) >= _MAX_CACHED_DENIES:
                self._denied.clear()  # bounded: jti-specific denies are unbounded in number
            found = self._denied[d] = self._build_deny(d)
        return found

    def _build_deny(self, d: Deny) -> Denial:
        outcome = d.outcome
        status, error = outcome.http_status, outcome.error
        challenge = f'Bearer realm="{self._s.realm}"'
        body: dict[str, str] = {}
        if error is not None:
            challenge += f', error="{error}", error_description="{_quoted(d.description)}"'
            body = {"error": error, "error_description": d.description}
            if d.needed:
                challenge += f', scope="{" ".join(d.needed)}"'
                body["scope"] = " ".join(d.needed)
        else:
            body = {"error_description": d.description}
        headers = [("content-type", "application/json"), ("cache-control", "no-store")]
        if status in (400, 401, 403):
            headers.append(("www-authenticate", challenge))
        metadata = {"deny_reason": d.reason.value}
        if d.jti:
            metadata["jti"] = d.jti
        return Denial(status, outcome.rpc_code, tuple(headers), json.dumps(body, separators=(",", ":")), metadata)


__all__ = ["Allow", "Denial", "Verdict", "Verdicts"]
