"""Redis (``SYSTEM_CACHE_URL``): what every replica and worker of the token service shares beyond
the database — brute-force counters (:mod:`token_service.cache.counters`), short-lived state
(:mod:`token_service.cache.shortlived`) and CheckAccess cache invalidation
(:mod:`token_service.cache.invalidation`), over one client (:mod:`token_service.cache.client`).

Unset, none of it exists and the database does all of it (the embedded default). What each use
does when Redis is down or slow is documented in ``docs/token-service.md, Redis``.
"""

from token_service.cache.client import Cache

__all__ = ["Cache"]
