"""Kubernetes service-account federation: cluster issuers the token service trusts, their keys,
and service-account tokens as client assertions (RFC 7523). See docs/token-service.md."""

from token_service.federation.assertion import JWT_BEARER, Assertion, ClientAssertions
from token_service.federation.trust import ClusterIssuer, Trust, load_trust

__all__ = ["JWT_BEARER", "Assertion", "ClientAssertions", "ClusterIssuer", "Trust", "load_trust"]
