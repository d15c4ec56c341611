"""What a revocation event is about: the one rule the token service's feed and the sidecar share.

The newest event per *subject* decides (a lifted one withdraws it). The token service builds its
snapshots and compacts its feed by this rule, and the sidecar applies live events by it, so the two
always hold the same effective set.

An identity name has two subjects. Its *deletion* cut-off kills the tokens of every deleted
identity of that name and is never withdrawn; its *state* (disabled, policy cut-off) belongs to the
identity that holds the name now and is replaced or lifted as that identity changes. Were they one
subject, enabling a re-created identity would lift the cut-off of the deleted one and its tokens
would pass again.

An OAuth client id (target CLIENT, issue 13) has the same two subjects, for the same reason: its
deletion cut-off (CLIENT_DELETED) outlives a client registered again under the id, whose state
(CLIENT_DISABLED, lifted on enable) is its own. A CLIENT event covers every token whose
``client_id`` claim is the client, whoever its subject; an IDENTITY event covers only tokens whose
``sub`` names an identity (:func:`names_identity`): a client's own token (``sub_kind`` client) is
never touched by an identity of the same name, nor an identity's token by a client's ``sub``.
"""

from __future__ import annotations

from typing import Any, Final

from native_iam import claims
from native_iam.oauth.v1 import feed_pb2

__all__ = [
    "CLIENT_DELETION",
    "CLIENT_STATE",
    "IDENTITY_DELETION",
    "IDENTITY_STATE",
    "client_slot",
    "identity_slot",
    "names_identity",
    "subject",
]

#: The deletion cut-off of an identity name (reason IDENTITY_DELETED): never lifted.
IDENTITY_DELETION: Final = "deleted"
#: The current identity's disable or policy cut-off: replaced and lifted as it changes.
IDENTITY_STATE: Final = "state"


#: The deletion cut-off of a client id (reason CLIENT_DELETED): never lifted.
CLIENT_DELETION: Final = "deleted"
#: The disable cut-off of the client registered under the id now: lifted on enable.
CLIENT_STATE: Final = "state"


def names_identity(principal: str) -> bool:
    """Whether a token's ``sub`` names an identity (so IDENTITY events apply to it): not for a
    client's own token (``sub_kind`` client), whose ``sub`` is a client id."""
    return principal != claims.CLIENT_PRINCIPAL


def client_slot(reason: int) -> str:
    """Which of a client id's two subjects an event with ``reason`` is about."""
    return CLIENT_DELETION if reason == feed_pb2.CLIENT_DELETED else CLIENT_STATE


def identity_slot(reason: int) -> str:
    """Which of an identity name's two subjects an event with ``reason`` is about."""
    return IDENTITY_DELETION if reason == feed_pb2.IDENTITY_DELETED else IDENTITY_STATE


def subject(r: Any) -> tuple[Any, ...]:
    """The subject of a ``Revocation``: its target and what names it within the target."""
    if r.target == feed_pb2.TOKEN:
        return (r.target, r.jti)
    if r.target == feed_pb2.IDENTITY:
        return (r.target, r.namespace, r.identity, identity_slot(r.reason))
    if r.target == feed_pb2.CLIENT:
        return (r.target, r.client_id, client_slot(r.reason))
    if r.target == feed_pb2.NAMESPACE:
        return (r.target, r.namespace)
    return (r.target, r.kid)
