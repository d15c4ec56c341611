"""The OAuth 2.0 HTTP transport: the Starlette endpoints (:mod:`~token_service.api.http.routes`),
their adapter to the domain (:mod:`~token_service.api.http.backend`), client authentication, form
parsing, and the uvicorn server with its connection guard (:mod:`~token_service.api.http.server`)."""

from token_service.api.http.server import HttpServer

__all__ = ["HttpServer"]
