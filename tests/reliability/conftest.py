"""Fixtures for the reliability tests: the sidecar's and the token service's own, reused as they are."""

from __future__ import annotations

from tests.sidecar.conftest import issuer
from tests.token_service.api.http.conftest import oauth_service
from tests.token_service.conftest import channel, oauth, postgres_url, service, sqlite_url

__all__ = ["channel", "issuer", "oauth", "oauth_service", "postgres_url", "service", "sqlite_url"]
