"""Strict ``application/x-www-form-urlencoded`` parsing for the OAuth endpoints.

RFC 6749 §3.2 and §2.3.1: token endpoint parameters travel in the request body only, are sent
at most once, and a parameter without a value is treated as omitted (§3.1). Anything that does
not parse is ``invalid_request`` — never a 500, never a silently dropped value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from native_iam import limits
from token_service.errors import InvalidRequest, RequestTooLarge

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
MAX_BODY_BYTES: Final = limits.MAX_FORM_BODY_BYTES
#: More fields than any OAuth request has; bounds the parser's work.
MAX_FIELDS: Final = 32
#: Per-parameter limits (bytes of UTF-8), matching the gRPC API's request limits.
MAX_LENGTHS: Final[Mapping[str, int]] = {
    "grant_type": limits.MAX_KEYWORD_BYTES,
    "username": limits.MAX_NAME_BYTES,
    "namespace": limits.MAX_NAME_BYTES,
    "password": limits.MAX_PASSWORD_BYTES,
    "scope": limits.MAX_SCOPE_PARAMETER_LENGTH,
    "refresh_token": limits.MAX_TOKEN_BYTES,
    "token": limits.MAX_TOKEN_BYTES,
    "token_type_hint": limits.MAX_KEYWORD_BYTES,
    "client_id": limits.MAX_CLIENT_ID_LENGTH,
    "client_secret": limits.MAX_CLIENT_SECRET_BYTES,
    # The authorization code flow (token_service/api/http/authorize.py, RFC 6749 §4.1, RFC 7636).
    "redirect_uri": limits.MAX_REDIRECT_URI_LENGTH,
    "post_logout_redirect_uri": limits.MAX_REDIRECT_URI_LENGTH,
    "id_token_hint": limits.MAX_TOKEN_BYTES,
    "code": limits.MAX_CODE_LENGTH,
    "code_verifier": limits.MAX_CODE_VERIFIER_LENGTH,
    "state": limits.MAX_STATE_BYTES,
    "nonce": limits.MAX_STATE_BYTES,
    # RFC 7523 client assertions (a Kubernetes service-account token) and RFC 8693 token exchange
    "client_assertion": limits.MAX_TOKEN_BYTES,
    "subject_token": limits.MAX_TOKEN_BYTES,
    "actor_token": limits.MAX_TOKEN_BYTES,
    "audience": limits.MAX_AUDIENCE_BYTES,
}
#: Any other parameter (ignored by the endpoints, RFC 6749 §3.1) still gets a bound.
DEFAULT_MAX_LENGTH: Final = limits.MAX_OTHER_PARAMETER_BYTES
#: Parameters that may legitimately repeat: RFC 8707 §2 allows several ``resource`` values, RFC 8693
#: §2.1 several ``audience`` values.
MULTI_VALUED: Final = frozenset({"resource", "audience"})


@dataclass(frozen=True, slots=True)
class Form:
    """The parameters of one request body; each name appears once and has a non-empty value."""

    params: Mapping[str, str]
    #: Values of the :data:`MULTI_VALUED` parameters, in request order.
    multi: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of a multi-valued parameter (empty when absent)."""
        return self.multi.get(name, ())

    def get(self, name: str) -> str | None:
        """The value of ``name``, or None when it was absent (or sent empty, RFC 6749 §3.1)."""
        return self.params.get(name)

    def require(self, name: str) -> str:
        """The value of ``name``; invalid_request naming it when it is missing."""
        value = self.params.get(name)
        if value is None:
            raise InvalidRequest(f"missing parameter: {name}")
        return value


def _check_content_type(header: str | None) -> None:
    if header is None:
        raise InvalidRequest(f"the request body must be {FORM_CONTENT_TYPE}")
    media_type, _, rest = header.partition(";")
    if media_type.strip().lower() != FORM_CONTENT_TYPE:
        raise InvalidRequest(f"the request body must be {FORM_CONTENT_TYPE}")
    for param in rest.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in {"utf-8", "utf8"}:
            raise InvalidRequest("the request body must be encoded as UTF-8")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"the request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    # Stream rather than request.body(): a lying or absent Content-Length cannot make us buffer more.
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"the request body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client left, or the body deadline cut it off (token_service/api/http/guard.py, which
        # already answered 408): an ordinary refusal that nobody will read, not a server error.
        raise InvalidRequest("the request body did not arrive") from None
    return b"".join(chunks)


def parse_body(body: bytes) -> Form:
    """Parse a form body; invalid_request on bad UTF-8, repeated names or oversized values."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
            separator="&",
        )
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the request body is not valid UTF-8") from exc
    except ValueError as exc:  # max_num_fields exceeded
        raise InvalidRequest(f"too many parameters (at most {MAX_FIELDS})") from exc
    params: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in MULTI_VALUED:
            if "\x00" in value or len(value.encode("utf-8")) > DEFAULT_MAX_LENGTH:
                raise InvalidRequest(f"parameter {name} has a NUL character or exceeds {DEFAULT_MAX_LENGTH} bytes")
            if value:
                multi.setdefault(name, []).append(value)
            continue
        if name in seen:
            # RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once."
            raise InvalidRequest(f"parameter sent more than once: {name[:40]}")
        seen.add(name)
        if "\x00" in name or "\x00" in value:
            raise InvalidRequest("parameters must not contain NUL characters")
        limit = MAX_LENGTHS.get(name, DEFAULT_MAX_LENGTH)
        if len(value.encode("utf-8")) > limit:
            raise InvalidRequest(f"parameter {name[:40]} exceeds {limit} bytes")
        if value:
            params[name] = value
    return Form(params, {name: tuple(values) for name, values in multi.items()})


async def read_form(request: Request, *, limit: int = MAX_BODY_BYTES) -> Form:
    """The form body of ``request``. The query string is never consulted (RFC 6749 §3.2)."""
    _check_content_type(request.headers.get("content-type"))
    return parse_body(await _read_body(request, limit))
