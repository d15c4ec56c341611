"""The browser side of the flow: login sessions and pending authorization requests, with CSRF tokens.

Everything lives in ``core.short_lived`` (the database, or Redis with SYSTEM_CACHE_URL), keyed by
the SHA-256 of the secret the browser holds, never by the secret itself:

* a **session** (kind ``session``): the cookie's value is 256 random bits. Every browser that
  reaches the authorization endpoint gets one (anonymous, 15 minutes) so that even the login
  form has a CSRF token bound to it (login CSRF: signing a victim in as the attacker). A
  successful login replaces it by a new one (no session fixation) that names the identity and
  lives NATIVE_IAM_LOGIN_SESSION_TTL_S from the login; logout deletes it.
* a **pending request** (kind ``authz_request``): a checked authorization request between the
  authorization endpoint and the code, referenced by a random id in the forms and bound to
  the session it started in (another browser cannot continue it).

The CSRF token is random per session, sent in a hidden form field, and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Final

from native_iam.limits import MAX_BROWSER_SECRET_LENGTH
from token_service.authorize.request import AuthorizationRequest
from token_service.core import Core

__all__ = ["BrowserSession", "Sessions", "secret_key"]

SESSION_KIND: Final = "session"
REQUEST_KIND: Final = "authz_request"
#: Life of a session before its login, and of a pending authorization request.
ANONYMOUS_TTL_S: Final = 900
REQUEST_TTL_S: Final = 900


def secret_key(secret: str) -> str:
    """The storage key of a secret the browser holds (its SHA-256, hex)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """One browser's session; ``key`` is the hash of its cookie."""

    key: str
    csrf: str
    identity_id: int | None = None
    identity_uid: str = ""
    namespace: str = ""
    identity: str = ""
    auth_time: int = 0
    expires_at: float = 0.0

    @property
    def signed_in(self) -> bool:
        return self.identity_id is not None

    def csrf_matches(self, presented: str | None) -> bool:
        """Whether ``presented`` is this session's CSRF token (constant time)."""
        return presented is not None and hmac.compare_digest(presented.encode("utf-8", "replace"), self.csrf.encode())


class Sessions:
    """Sessions and pending requests of one token service process (state in ``core.short_lived``)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def load(self, cookie: str | None) -> BrowserSession | None:
        if not cookie or len(cookie) > MAX_BROWSER_SECRET_LENGTH:
            return None
        value = await self.core.short_lived.get(SESSION_KIND, secret_key(cookie))
        return None if value is None else BrowserSession(**json.loads(value))

    async def start(
        self,
        *,
        identity_id: int | None = None,
        identity_uid: str = "",
        namespace: str = "",
        identity: str = "",
    ) -> tuple[str, BrowserSession]:
        """A new session: ``(cookie value, session)``; signed in when ``identity_id`` is given."""
        cookie = secrets.token_urlsafe(32)
        now = self.core.clock()
        ttl = ANONYMOUS_TTL_S if identity_id is None else self.core.settings.login_session_ttl_s
        session = BrowserSession(
            key=secret_key(cookie),
            csrf=secrets.token_urlsafe(32),
            identity_id=identity_id,
            identity_uid=identity_uid,
            namespace=namespace,
            identity=identity,
            auth_time=int(now) if identity_id is not None else 0,
            expires_at=now + ttl,
        )
        await self.core.short_lived.put(SESSION_KIND, session.key, json.dumps(asdict(session)), ttl)
        return cookie, session

    async def end(self, session: BrowserSession) -> None:
        await self.core.short_lived.delete(SESSION_KIND, session.key)

    # --- pending authorization requests ----------------------------------------------------

    async def hold(self, session: BrowserSession, request: AuthorizationRequest) -> str:
        """Keep ``request`` for the forms of ``session``; the id the forms carry."""
        request_id = secrets.token_urlsafe(32)
        await self._put(request_id, session, request)
        return request_id

    async def _put(self, request_id: str, session: BrowserSession, request: AuthorizationRequest) -> None:
        value = json.dumps({"session": session.key, "request": request.to_json()})
        await self.core.short_lived.put(REQUEST_KIND, secret_key(request_id), value, REQUEST_TTL_S)

    async def pending(self, request_id: str | None, session: BrowserSession) -> AuthorizationRequest | None:
        """The request ``request_id`` if it is live and belongs to ``session``."""
        if not request_id or len(request_id) > MAX_BROWSER_SECRET_LENGTH:
            return None
        value = await self.core.short_lived.get(REQUEST_KIND, secret_key(request_id))
        if value is None:
            return None
        held = json.loads(value)
        if not hmac.compare_digest(held["session"], session.key):
            return None
        return AuthorizationRequest.from_json(held["request"])

    async def move(self, request_id: str, request: AuthorizationRequest, session: BrowserSession) -> None:
        """Bind a pending request to the session that replaced its own at login."""
        await self._put(request_id, session, request)

    async def finish(self, request_id: str) -> bool:
        """Claim the pending request once (atomic): False when another submission already did."""
        return await self.core.short_lived.take(REQUEST_KIND, secret_key(request_id)) is not None
