"""Fixtures for the authorization code flow: the running token service of the OAuth HTTP tests
(tests/token_service/api/http/conftest.py, re-used, not copied) plus helpers for the browser side."""

from __future__ import annotations

from tests.token_service.api.http.conftest import http, oauth_service

__all__ = ["http", "oauth_service"]
