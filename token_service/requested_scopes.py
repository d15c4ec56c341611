"""The scopes a request asks for, checked once for every transport (gRPC, HTTP) and every domain
function (grants, CheckAccess) by :func:`native_iam.scopes.normalize`; and the one rule that turns
them and a policy into the scopes a grant issues (:func:`granted_scopes`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from native_iam import scopes as scope_rules
from token_service.errors import MalformedScope, ScopeNotGranted

__all__ = ["granted_scopes", "requested_scopes"]


def requested_scopes(values: Iterable[str]) -> tuple[str, ...]:
    """``values`` deduplicated and sorted; :class:`MalformedScope` when
    :func:`~native_iam.scopes.normalize` refuses them."""
    try:
        return scope_rules.normalize(values)
    except scope_rules.ScopeError as exc:
        raise MalformedScope(str(exc)) from None


def granted_scopes(requested: tuple[str, ...], policy: Sequence[str], *, whose: str = "") -> tuple[str, ...]:
    """What a grant issues under ``policy`` (an identity's or a client's): the ``requested`` scopes
    when the policy covers each one, else :class:`ScopeNotGranted` naming those it does not
    (``whose`` says whose policy, e.g. " to this client"); nothing requested: the policy's
    concrete scopes (:func:`native_iam.scopes.concrete`)."""
    if not requested:
        return scope_rules.concrete(policy)
    missing = scope_rules.not_covered(requested, policy)
    if missing:
        raise ScopeNotGranted(f"scope not granted{whose}: {' '.join(missing)}"[:300])
    return requested
