"""What a revocation event is about: the one rule the token service's feed and the sidecar share.

The newest event per *subject* decides (a lifted one withdraws it). The token service builds its
snapshots and compacts its feed by this rule, and the sidecar applies live events by it, so the two
always hold the same effective set.

An identity name has two subjects. Its *deletion* cut-off kills the tokens of every deleted
identity of that name and is never withdrawn; its *state* (disabled, policy cut-off) belongs to the
identity that holds the name now and is replaced or lifted as that identity changes. Were they one
subject, enabling a re-created identity would lift the cut-off of the deleted one and its tokens
would pass again.
"""

from __future__ import annotations

from typing import Any, Final

from native_iam.oauth.v1 import feed_pb2

__all__ = ["IDENTITY_DELETION", "IDENTITY_STATE", "identity_slot", "subject"]

#: The deletion cut-off of an identity name (reason IDENTITY_DELETED): never lifted.
IDENTITY_DELETION: Final = "deleted"
#: The current identity's disable or policy cut-off: replaced and lifted as it changes.
IDENTITY_STATE: Final = "state"


def identity_slot(reason: int) -> str:
    """Which of an identity name's two subjects an event with ``reason`` is about."""
    return IDENTITY_DELETION if reason == feed_pb2.IDENTITY_DELETED else IDENTITY_STATE


def subject(r: Any) -> tuple[Any, ...]:
    """The subject of a ``Revocation``: its target and what names it within the target."""
    if r.target == feed_pb2.TOKEN:
        return (r.target, r.jti)
    if r.target == feed_pb2.IDENTITY:
        return (r.target, r.namespace, r.identity, identity_slot(r.reason))
    if r.target == feed_pb2.NAMESPACE:
        return (r.target, r.namespace)
    return (r.target, r.kid)
