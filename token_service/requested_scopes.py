"""The scopes a request asks for, checked once for every transport (gRPC, HTTP) and every domain
function (grants, CheckAccess) by :func:`native_iam.scopes.normalize`."""

from __future__ import annotations

from collections.abc import Iterable

from native_iam import scopes as scope_rules
from token_service.errors import MalformedScope

__all__ = ["requested_scopes"]


def requested_scopes(values: Iterable[str]) -> tuple[str, ...]:
    """``values`` deduplicated and sorted; :class:`MalformedScope` when
    :func:`~native_iam.scopes.normalize` refuses them."""
    try:
        return scope_rules.normalize(values)
    except scope_rules.ScopeError as exc:
        raise MalformedScope(str(exc)) from None
