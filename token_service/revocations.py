"""Making tokens dead: the only writer of "dead" state and of revocation feed events.

Every change that makes tokens unacceptable (a disabled or deleted token, identity or OAuth
client, a narrowed policy, a retired key, refresh-token reuse, RFC 7009 revocation, a password change) is one
function here. Each writes the state change *and* its feed event in the caller's transaction, so
a sidecar learns of exactly what changed, no more and no fewer, and the two never disagree.

The functions run on a sync ``Connection``: the grant paths call them inside
:meth:`~token_service.store.Store.run_write`, the admin paths through
``await conn.run_sync(fn, ...)`` on their async transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from native_iam.oauth.v1 import feed_pb2
from token_service.errors import NotFound
from token_service.store import clients, identities, keys, tokens
from token_service.store import revocations as feed_log
from token_service.store.revocations import Event
from token_service.store.tokens import TokenMatch

__all__ = [
    "KEY_CUTOFF_ALL",
    "Reason",
    "Target",
    "TokenMatch",
    "cut_policy",
    "delete_client",
    "delete_identity",
    "delete_token",
    "disable_tokens",
    "expires",
    "last_deletion_cutoff",
    "retire_key",
    "set_client_enabled",
    "set_identity_active",
    "set_token_active",
]

Target = feed_pb2.RevocationTarget
Reason = feed_pb2.RevocationReason

#: ``cutoff_unix`` of a KEY_RETIRED event: the largest int64, so that no ``iat`` escapes it. A
#: retired key's tokens are all dead, including forgeries with an ``iat`` after the retirement.
KEY_CUTOFF_ALL = 2**63 - 1

Instant = TypeVar("Instant", int, float)


def expires(cutoff: Instant, max_token_ttl_s: int) -> Instant:
    """When every token issued (``iat``) at or before ``cutoff`` has expired: until then an event
    with this cut-off decides something, and a key retired then must stay published. The one
    place of the rule."""
    return cutoff + max_token_ttl_s


# --- tokens -----------------------------------------------------------------------------------


def disable_tokens(conn: Connection, match: TokenMatch, reason: int, now: float) -> int:
    """Disable the active tokens that ``match``, one TOKEN event (``reason``) each; how many.

    Callers: refresh-token reuse (the family), RFC 7009 revocation by the client, a password change.
    """
    rows = tokens.disable_active(conn, match)
    feed_log.append(
        conn, [Event(target=Target.TOKEN, reason=reason, jti=row.jti, expires_unix=row.expires_at) for row in rows], now
    )
    return len(rows)


def set_token_active(conn: Connection, jti: str, active: bool, now: float) -> None:
    """Disable a token or lift its disabling (admin); NotFound when there is no such token."""
    row = tokens.state(conn, jti)
    if row is None:
        raise NotFound("token not found")
    wanted = "active" if active else "disabled"
    if row.state != wanted:
        tokens.set_state(conn, jti, wanted)
        feed_log.append(
            conn,
            [
                Event(
                    target=Target.TOKEN,
                    reason=Reason.TOKEN_DISABLED,
                    jti=jti,
                    expires_unix=row.expires_at,
                    lifted=active,
                )
            ],
            now,
        )


def delete_token(conn: Connection, jti: str, now: float) -> None:
    """Delete a token's row (admin); NotFound when there is no such token."""
    row = tokens.state(conn, jti)
    if row is None:
        raise NotFound("token not found")
    tokens.delete_token(conn, jti)
    feed_log.append(
        conn, [Event(target=Target.TOKEN, reason=Reason.TOKEN_DELETED, jti=jti, expires_unix=row.expires_at)], now
    )


# --- identities -------------------------------------------------------------------------------
#
# ``now`` is read by the caller while it holds the identity's row lock: every grant that committed
# first read its clock (its tokens' iat) before that, so the cut-off covers them.


def _identity_event(
    reason: int, namespace: str, name: str, cutoff: int, max_token_ttl_s: int, lifted: bool = False
) -> Event:
    return Event(
        target=Target.IDENTITY,
        reason=reason,
        namespace=namespace,
        identity=name,
        cutoff_unix=cutoff,
        expires_unix=expires(cutoff, max_token_ttl_s),
        lifted=lifted,
    )


def set_identity_active(
    conn: Connection, identity_id: int, namespace: str, name: str, active: bool, now: float, max_token_ttl_s: int
) -> None:
    """Enable or disable; disabling cuts every token issued to the identity until ``now``."""
    current = identities.state(conn, identity_id)
    if current is None or bool(current.active) == active:
        return
    identities.set_active(conn, identity_id, active, now)
    event = _identity_event(Reason.IDENTITY_DISABLED, namespace, name, int(now), max_token_ttl_s, lifted=active)
    if active and current.policy_cutoff_at is not None:
        # The newest state event per identity decides at the sidecar (its deletion cut-off is
        # kept apart), so lifting the disable must not lift an earlier policy cut-off with it:
        # re-state that one instead.
        event = _identity_event(Reason.POLICY_CHANGED, namespace, name, current.policy_cutoff_at, max_token_ttl_s)
    feed_log.append(conn, [event], now)


def delete_identity(
    conn: Connection, identity_id: int, namespace: str, name: str, now: float, max_token_ttl_s: int
) -> None:
    """Delete the identity; its tokens become TOKEN_NOT_FOUND / IDENTITY_NOT_FOUND."""
    identities.delete(conn, identity_id)
    feed_log.append(conn, [_identity_event(Reason.IDENTITY_DELETED, namespace, name, int(now), max_token_ttl_s)], now)


def cut_policy(conn: Connection, identity_id: int, namespace: str, name: str, now: float, max_token_ttl_s: int) -> None:
    """The identity's policy was narrowed: every token issued to it until ``now`` is dead."""
    identities.set_policy_cutoff(conn, identity_id, int(now))
    feed_log.append(conn, [_identity_event(Reason.POLICY_CHANGED, namespace, name, int(now), max_token_ttl_s)], now)


async def last_deletion_cutoff(
    conn: AsyncConnection, namespace: str, name: str, now: float, max_token_ttl_s: int, *, client: bool = False
) -> int | None:
    """The cut-off of a deletion of this identity name (``client``: of this OAuth client id,
    ``name``) in the last second, if any."""
    subject = (
        {"target": Target.CLIENT, "reason": Reason.CLIENT_DELETED, "client_id": name}
        if client
        else {"target": Target.IDENTITY, "reason": Reason.IDENTITY_DELETED, "namespace": namespace, "identity": name}
    )
    # A deletion in the last second has a cut-off of at least int(now) - 1, so it expires
    # at or after this: the bound lets the expires_unix index skip every older event.
    return await feed_log.latest_cutoff(conn, **subject, expiring_from=expires(int(now) - 1, max_token_ttl_s))


# --- OAuth clients ----------------------------------------------------------------------------
#
# A CLIENT event covers every token whose ``client_id`` claim is the client (its own
# client_credentials tokens and the identities' tokens it obtained). The token service itself
# reads the client's row at CheckAccess (store.tokens.for_check): a missing row or one created
# after the token's iat (a client registered again under the id) is a deleted client; a disabled
# row is a disabled client. ``now`` is read under the client's row lock (clients.locked), after
# every grant that share-locked it (clients.for_grant) has committed.


def _client_event(reason: int, client_id: str, cutoff: int, max_token_ttl_s: int, lifted: bool = False) -> Event:
    return Event(
        target=Target.CLIENT,
        reason=reason,
        client_id=client_id,
        cutoff_unix=cutoff,
        expires_unix=expires(cutoff, max_token_ttl_s),
        lifted=lifted,
    )


def set_client_enabled(
    conn: Connection, client_id: str, enabled: bool, clock: Callable[[], float], max_token_ttl_s: int
) -> None:
    """Enable or disable a client; disabling cuts every token with its ``client_id`` issued until
    now (read from ``clock`` under the row lock), enabling lifts that cut. Nothing when unchanged."""
    current = clients.locked(conn, client_id)
    if current is None:
        raise NotFound(f"client {client_id!r} not found")
    if current.enabled == enabled:
        return
    now = clock()
    clients.set_enabled_sync(conn, client_id, enabled)
    event = _client_event(Reason.CLIENT_DISABLED, client_id, int(now), max_token_ttl_s, lifted=enabled)
    feed_log.append(conn, [event], now)


def delete_client(conn: Connection, client_id: str, clock: Callable[[], float], max_token_ttl_s: int) -> None:
    """Delete a client: every token with its ``client_id`` issued until now is dead for good."""
    if clients.locked(conn, client_id) is None:
        raise NotFound(f"client {client_id!r} not found")
    now = clock()
    clients.delete_sync(conn, client_id)
    feed_log.append(conn, [_client_event(Reason.CLIENT_DELETED, client_id, int(now), max_token_ttl_s)], now)


# --- keys -------------------------------------------------------------------------------------


def retire_key(conn: Connection, kid: str, now: float, max_token_ttl_s: int) -> None:
    """Retire ``kid`` at once (compromise): out of the JWKS, and every token it signed dead."""
    keys.retire(conn, kid, now)
    event = Event(
        target=Target.KEY,
        reason=Reason.KEY_RETIRED,
        kid=kid,
        # Every token it ever signed, whatever its iat (the key's thief writes any iat); the
        # largest cut-off says so to enforcement points that still compare iat.
        cutoff_unix=KEY_CUTOFF_ALL,
        # Its last genuine token (iat <= now) expires within the TTL; one second more for the
        # fraction of ``now`` that int() dropped.
        expires_unix=expires(int(now), max_token_ttl_s) + 1,
    )
    feed_log.append(conn, [event], now)
