"""The gRPC transport: the OAuth service (:mod:`~token_service.api.grpc.oauth`), the Feed service
(:mod:`~token_service.api.grpc.feed`) and the admin services (:mod:`~token_service.api.grpc.admin`,
:mod:`~token_service.api.grpc.clients`), all behind the one edge wrapper
(:mod:`~token_service.api.grpc.edge`) that translates errors into gRPC statuses."""

from __future__ import annotations

import grpc
from opentelemetry import trace

from token_service.api.grpc.admin import ADMIN_SERVICES, admin_handlers
from token_service.api.grpc.clients import client_admin_handlers
from token_service.api.grpc.edge import Streaming
from token_service.api.grpc.feed import FEED_SERVICE, feed_handlers
from token_service.api.grpc.oauth import OAUTH_SERVICE, oauth_handler
from token_service.core import Core
from token_service.metrics import Metrics

__all__ = [
    "ADMIN_SERVICES",
    "FEED_SERVICE",
    "OAUTH_SERVICE",
    "admin_handlers",
    "client_admin_handlers",
    "rpc_handlers",
]


def rpc_handlers(
    core: Core, metrics: Metrics | None, watch: Streaming | None = None, tracer: trace.Tracer | None = None
) -> list[grpc.GenericRpcHandler]:
    """The OAuth and Feed services (the admin services are registered separately, when enabled)."""
    return [oauth_handler(core, metrics, tracer), feed_handlers(core, metrics, watch, tracer)]
