"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3).

Exactly one method per request (§2.3): HTTP Basic (``client_secret_basic``, id and secret
form-urlencoded before base64 as §2.3.1 requires), ``client_id`` + ``client_secret`` in the body
(``client_secret_post``), ``client_id`` alone for a public client (``none``), or a Kubernetes
service-account token as a JWT bearer client assertion (``kubernetes_service_account``: RFC 7523
§2.2 ``client_assertion_type`` + ``client_assertion``, verified by
:mod:`token_service.federation`; ``client_id`` optional, and equal to the mapped client when
sent). The method used must be the one the client is registered with. Every failure is
``invalid_client``; an unknown client and a wrong secret are indistinguishable, also in time.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from token_service.api.http.forms import Form
from token_service.clients import AuthMethod, ClientStore, OAuthClient, verify_secret
from token_service.errors import InvalidClient, InvalidRequest
from token_service.federation import JWT_BEARER, ClientAssertions

__all__ = ["Credentials", "authenticate_client", "presented_credentials"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the request presented: the client id, the secret or assertion (if any) and how it was
    sent. With an assertion ``client_id`` is what the body claimed ("" when it named none)."""

    client_id: str
    secret: str | None
    method: AuthMethod
    assertion: str | None = None


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("only HTTP Basic client authentication is supported")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidClient("malformed Basic credentials") from exc
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("malformed Basic credentials")
    try:
        # RFC 6749 §2.3.1: both are application/x-www-form-urlencoded before Basic encoding.
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidClient("malformed Basic credentials") from exc
    if not client_id:
        raise InvalidClient("missing client_id in Basic credentials")
    return client_id, secret


def presented_credentials(authorization: str | None, form: Form) -> Credentials:
    """The credentials in the request; invalid_request if two methods are mixed (RFC 6749 §2.3)."""
    body_id, body_secret = form.get("client_id"), form.get("client_secret")
    assertion_type, assertion = form.get("client_assertion_type"), form.get("client_assertion")
    if assertion_type is not None or assertion is not None:
        if authorization is not None or body_secret is not None:
            raise InvalidRequest("use one client authentication method, not two")
        if assertion is None or assertion_type is None:
            raise InvalidRequest("client_assertion and client_assertion_type go together (RFC 7523 §2.2)")
        if assertion_type != JWT_BEARER:
            raise InvalidClient(f"unsupported client_assertion_type; use {JWT_BEARER}")
        return Credentials(body_id or "", None, AuthMethod.KUBERNETES_SERVICE_ACCOUNT, assertion)
    if authorization is not None:
        client_id, secret = _basic_credentials(authorization)
        if body_secret is not None:
            raise InvalidRequest("use one client authentication method, not two")
        if body_id is not None and body_id != client_id:
            raise InvalidRequest("client_id in the body differs from the Basic credentials")
        return Credentials(client_id, secret, AuthMethod.CLIENT_SECRET_BASIC)
    if body_id is None:
        raise InvalidClient("client authentication is required")
    if body_secret is not None:
        return Credentials(body_id, body_secret, AuthMethod.CLIENT_SECRET_POST)
    return Credentials(body_id, None, AuthMethod.NONE)


async def authenticate_client(
    authorization: str | None,
    form: Form,
    store: ClientStore,
    server_key: bytes,
    assertions: ClientAssertions | None = None,
) -> OAuthClient:
    """The authenticated client of a request, or :class:`InvalidClient` saying why not."""
    credentials = presented_credentials(authorization, form)
    if credentials.assertion is not None:
        return await _asserted_client(credentials, store, assertions)
    client = await store.get_client(credentials.client_id)
    if credentials.secret is not None:
        # Always verify (against a dummy for an unknown client) so timing reveals nothing.
        secret_ok = verify_secret(server_key, credentials.secret, client.secret_hash if client else None)
        if client is None or not secret_ok:
            raise InvalidClient("client authentication failed")
    elif client is None or not client.is_public:
        raise InvalidClient("client authentication failed")
    if client.auth_method is not credentials.method:
        raise InvalidClient(f"this client must authenticate with {client.auth_method.value}")
    return client


async def _asserted_client(
    credentials: Credentials, store: ClientStore, assertions: ClientAssertions | None
) -> OAuthClient:
    """The client a service-account token maps to (RFC 7523 §3), its jti spent when single-use."""
    if assertions is None or not assertions.trust:
        raise InvalidClient("client assertions are not accepted: no cluster issuer is trusted")
    assertion = await assertions.verify(credentials.assertion or "")
    context = {"issuer": assertion.issuer.issuer, "subject": assertion.subject, "client": assertion.client_id}
    if credentials.client_id and credentials.client_id != assertion.client_id:
        raise assertions.refuse("client_mismatch", "client_id is not the service account's client", **context)
    client = await store.get_client(assertion.client_id)
    if client is None or client.auth_method is not AuthMethod.KUBERNETES_SERVICE_ACCOUNT:
        # A mapping must not turn a service account into a client that authenticates otherwise.
        raise assertions.refuse("not_registered", "the mapped client does not accept service accounts", **context)
    await assertions.spend(assertion)  # last: a refused assertion is not spent
    assertions.accepted(assertion)
    return client
