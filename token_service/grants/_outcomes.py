"""Counting grant outcomes once, in the grant layer, whichever transport asked (gRPC or HTTP)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec

from token_service.core import Core
from token_service.errors import GrantError
from token_service.grants._issue import IssuedTokens

__all__ = ["counted"]

P = ParamSpec("P")
Grant = Callable[Concatenate[Core, P], Awaitable[IssuedTokens]]


def counted(grant: str) -> Callable[[Grant[P]], Grant[P]]:
    """Count each call of a grant in ``native_iam_grants_total{grant, status}`` and each refusal in
    ``native_iam_grant_denials_total{grant, reason}`` (``core.metrics``; nothing without one).

    Here rather than in each transport so that a refusal over HTTP is counted exactly as the
    same refusal over gRPC. Errors that are not business outcomes (malformed input, database
    down) are not grant outcomes: the transports' own request metrics see them.
    """

    def decorate(fn: Grant[P]) -> Grant[P]:
        @functools.wraps(fn)
        async def run(core: Core, *args: P.args, **kwargs: P.kwargs) -> IssuedTokens:
            try:
                issued = await fn(core, *args, **kwargs)
            except GrantError as exc:
                if core.metrics is not None:
                    core.metrics.grants.labels(grant, exc.status or "").inc()
                    core.metrics.grant_denials.labels(grant, exc.reason).inc()
                raise
            if core.metrics is not None:
                core.metrics.grants.labels(grant, "OK").inc()
            return issued

        return run

    return decorate
