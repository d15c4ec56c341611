"""The token service's transports: :mod:`token_service.api.grpc` (OAuth, Feed and admin services)
and :mod:`token_service.api.http` (the OAuth 2.0 HTTP endpoints). Both call the same domain
functions; nothing below this package knows about gRPC status codes or HTTP."""

__all__: list[str] = []
