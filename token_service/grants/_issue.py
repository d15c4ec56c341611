"""Issuing a token pair inside a grant's transaction: sign, then store the rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from native_iam import claims
from token_service.clients import GrantType, OAuthClient
from token_service.core import Core
from token_service.errors import InvalidClient
from token_service.store import clients as stored_clients
from token_service.store import tokens as stored_tokens
from token_service.tokens import new_jti, token_hash

__all__ = ["ClientContext", "IssuedTokens", "client_context", "issue", "live_client"]


@dataclass(frozen=True, slots=True)
class ClientContext:
    """What an OAuth client changes about issuance (issue 3). ``None`` everywhere = the gRPC API's
    own tokens: ``client_id`` NATIVE_IAM_GRPC_CLIENT_ID, ``aud`` NATIVE_IAM_AUDIENCE, configured
    TTLs, a refresh token with every password grant, no rotation. A public client's refresh
    token refreshed over gRPC gets that client's context (``refresh_token._bound_client``)."""

    client_id: str
    #: ``aud`` of access tokens; empty = NATIVE_IAM_AUDIENCE.
    audiences: tuple[str, ...] = ()
    access_token_ttl_s: int | None = None
    refresh_token_ttl_s: int | None = None
    #: Whether the password grant also returns a refresh token ("allow refresh token").
    issue_refresh_token: bool = True
    #: Refresh-token rotation (RFC 9700 §2.2.2): each refresh spends the presented token.
    rotate_refresh_tokens: bool = False
    #: With rotation: a spent token presented again within this many seconds gets a fresh pair
    #: (concurrent retries); later, the whole family is revoked.
    reuse_grace_s: float = 5.0
    #: When the client was registered (Unix seconds): a refresh token issued before belongs to an
    #: earlier, deleted client of the same id (token_service.access.client_state).
    created_at: int = 0


def client_context(client: OAuthClient, reuse_grace_s: float) -> ClientContext:
    """What the grants need to know about an OAuth client (at the token endpoint or, for a
    public client's refresh token, over gRPC)."""
    return ClientContext(
        client_id=client.client_id,
        audiences=client.audiences,
        access_token_ttl_s=client.access_token_ttl_s,
        refresh_token_ttl_s=client.refresh_token_ttl_s,
        issue_refresh_token=client.allows(GrantType.REFRESH_TOKEN),
        rotate_refresh_tokens=client.rotate_refresh_tokens,
        reuse_grace_s=reuse_grace_s,
        created_at=client.created_at,
    )


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """The outcome of a successful grant."""

    access_token: str
    access_jti: str
    expires_in: int
    scopes: tuple[str, ...]
    identity: str
    namespace: str
    client_id: str
    #: ``None`` when no (new) refresh token was issued.
    refresh_token: str | None = None
    refresh_jti: str | None = None
    #: For the ID token of an authorization code grant: the request's nonce and when the user signed in.
    nonce: str | None = None
    auth_time: int | None = None


def issue(
    core: Core,
    conn: Connection,
    *,
    identity_id: int | None,
    identity_uid: str | None,
    namespace: str,
    identity: str,
    scopes: Sequence[str],
    metadata: str,
    client: ClientContext | None,
    now: float,
    with_refresh: bool,
    family_id: str | None = None,
    parent_jti: str | None = None,
    refresh_exp: int | None = None,
    refresh_scopes: Sequence[str] | None = None,
    act: Mapping[str, Any] | None = None,
    subject_jti: str | None = None,
    principal: str = claims.IDENTITY_PRINCIPAL,
) -> IssuedTokens:
    """Sign an access token (and a refresh token when ``with_refresh``) and store their rows.

    ``refresh_scopes`` (default: ``scopes``) are the new refresh token's scopes: a rotation that
    narrows the access token keeps the refresh token's old scopes (RFC 6749 §6). ``act`` and
    ``subject_jti`` are a token exchange's (RFC 8693): the actor claim, and the exchanged
    token's jti, kept as the new access token's ``parent_jti``. ``principal`` CLIENT_PRINCIPAL:
    the client's own token (client_credentials; ``identity_id`` None).

    An OAuth client's row is share-locked and must still be there and enabled (else
    :class:`InvalidClient`): a grant authenticated just before the client was disabled or deleted
    must not issue a token the revocation's cut-off (taken under the row lock) misses.
    """
    client_token = principal == claims.CLIENT_PRINCIPAL
    if client is not None and not client_token:  # client_credentials locked it already (its policy)
        live_client(conn, client.client_id)
    s = core.settings
    client_id = client.client_id if client else s.grpc_client_id
    audience = (client.audiences if client and client.audiences else None) or (s.audience,)
    access_ttl = (client.access_token_ttl_s if client else None) or s.access_token_ttl_s
    refresh_ttl = (client.refresh_token_ttl_s if client else None) or s.refresh_token_ttl_s
    iat = int(now)
    common = {
        "identity_id": identity_id,
        "identity_uid": identity_uid,
        "namespace": namespace,
        "identity": identity,
        "client_id": client_id,
        "scopes": " ".join(scopes),
        "metadata": metadata,
        "created_at": iat,
        "state": "active",
        "family_id": None,
        "parent_jti": None,
        "token_hash": None,
    }
    access_jti = new_jti()
    access_token, kid = core.codec.sign(
        usage=claims.ACCESS_TOKEN,
        jti=access_jti,
        sub=client_id if client_token else identity,  # RFC 9068 §2.2: a client's own token
        namespace=namespace,
        scopes_=scopes,
        client_id=client_id,
        audience=audience,
        iat=iat,
        exp=iat + access_ttl,
        act=act,
        principal=principal,
    )
    refresh_jti = new_jti() if with_refresh else None
    family = family_id or refresh_jti
    rows = [
        {
            **common,
            "family_id": family,
            "jti": access_jti,
            "usage": claims.ACCESS_TOKEN,
            "kid": kid,
            "expires_at": iat + access_ttl,
            "parent_jti": subject_jti,
        }
    ]
    refresh_token = None
    if refresh_jti is not None:
        exp = refresh_exp if refresh_exp is not None else iat + refresh_ttl
        kept_scopes = scopes if refresh_scopes is None else refresh_scopes
        refresh_token, kid = core.codec.sign(
            usage=claims.REFRESH_TOKEN,
            jti=refresh_jti,
            sub=identity,
            namespace=namespace,
            scopes_=kept_scopes,
            client_id=client_id,
            audience=(s.issuer,),  # a refresh token is only ever presented back to this service
            iat=iat,
            exp=exp,
            family=family,
        )
        rows.append(
            {
                **common,
                "jti": refresh_jti,
                "usage": claims.REFRESH_TOKEN,
                "kid": kid,
                "expires_at": exp,
                "family_id": family,
                "parent_jti": parent_jti,
                "token_hash": token_hash(refresh_token),
                "scopes": " ".join(kept_scopes),
            }
        )
    stored_tokens.insert(conn, rows)
    return IssuedTokens(
        access_token=access_token,
        access_jti=access_jti,
        expires_in=access_ttl,
        scopes=tuple(scopes),
        identity=identity,
        namespace=namespace,
        client_id=client_id,
        refresh_token=refresh_token,
        refresh_jti=refresh_jti,
    )


def live_client(conn: Connection, client_id: str) -> Any:
    """The client's grant row (enabled, created_at, scopes), share-locked; InvalidClient when it
    was deleted or disabled since the request authenticated it."""
    row = stored_clients.for_grant(conn, client_id)
    if row is None or not row.enabled:
        raise InvalidClient("the client is disabled or was deleted")
    return row
