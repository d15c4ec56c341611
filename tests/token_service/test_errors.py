"""The error tree: every leaf sets its codes explicitly, and seed statuses exist in the RPCs' enums."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest

from native_iam.oauth.v1 import oauth_pb2
from token_service import errors

LEAVES = errors.leaves()


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda c: c.__name__)
def test_leaf_sets_every_code_itself(leaf: type[errors.TokenServiceError]) -> None:
    """status, error, http_status and grpc_code are set on the leaf, not inherited (Authlib's drift)."""
    for attribute in ("status", "error", "http_status", "grpc_code", "challenge", "default_message"):
        assert attribute in vars(leaf), f"{leaf.__name__}.{attribute} is inherited"
    assert leaf.__doc__


@pytest.mark.parametrize("leaf", [c for c in LEAVES if issubclass(c, errors.GrantError)], ids=lambda c: c.__name__)
def test_grant_errors_travel_in_status(leaf: type[errors.GrantError]) -> None:
    """Business outcomes are gRPC OK and name a status of at least one seed RPC."""
    assert leaf.grpc_code == grpc.StatusCode.OK
    enums = [
        oauth_pb2.CreateTokenWithPasswordResponse.Status,
        oauth_pb2.RefreshTokenResponse.Status,
        oauth_pb2.CheckAccessResponse.Status,
    ]
    assert any(leaf.status in e.keys() for e in enums)  # noqa: SIM118 - EnumTypeWrapper has no __contains__


def test_every_seed_status_has_a_leaf() -> None:
    """Each non-OK seed status is produced by some leaf (nothing unmapped)."""
    produced = {c.status for c in LEAVES}
    for enum in (
        oauth_pb2.CreateTokenWithPasswordResponse.Status,
        oauth_pb2.RefreshTokenResponse.Status,
        oauth_pb2.CheckAccessResponse.Status,
    ):
        expected = set(enum.keys()) - {"STATUS_UNSPECIFIED", "OK"}
        assert expected <= produced, expected - produced


def test_request_errors_are_invalid_argument() -> None:
    """Malformed input is INVALID_ARGUMENT over gRPC and 400 over HTTP."""
    for leaf in (errors.InvalidRequest, errors.MalformedScope):
        assert leaf.grpc_code == grpc.StatusCode.INVALID_ARGUMENT and leaf.http_status == 400


#: The HTTP status each RFC error code calls for: RFC 6749 §5.2 (400, except invalid_client: 401),
#: RFC 6750 §3.1 (invalid_token 401, insufficient_scope 403), RFC 7009 §2.2.1
#: (unsupported_token_type 400), RFC 8707 §2 (invalid_target 400).
RFC_HTTP_STATUS = {
    "invalid_request": 400,
    "invalid_client": 401,
    "invalid_grant": 400,
    "unauthorized_client": 400,
    "unsupported_grant_type": 400,
    "invalid_scope": 400,
    "invalid_token": 401,
    "insufficient_scope": 403,
    "unsupported_token_type": 400,
    "invalid_target": 400,
}


@pytest.mark.parametrize("leaf", [c for c in LEAVES if c.error in RFC_HTTP_STATUS], ids=lambda c: c.__name__)
def test_rfc_codes_have_the_rfc_http_status(leaf: type[errors.TokenServiceError]) -> None:
    """Each RFC error code is answered with the status its RFC names; the one exception is an
    oversized body, invalid_request with 413 (RFC 9110 §15.5.14 Content Too Large)."""
    expected = 413 if leaf is errors.RequestTooLarge else RFC_HTTP_STATUS[leaf.error]
    assert leaf.http_status == expected


def test_unsupported_token_type_is_400() -> None:
    """RFC 7009 §2.2.1's only error code of its own is a 400 like RFC 6749 §5.2's."""
    assert RFC_HTTP_STATUS["unsupported_token_type"] == 400
    assert all(leaf.http_status == 400 for leaf in LEAVES if leaf.error == "unsupported_token_type")


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda c: c.__name__)
def test_every_401_and_insufficient_scope_has_a_challenge(leaf: type[errors.TokenServiceError]) -> None:
    """RFC 9110 §15.5.2: every 401 carries a WWW-Authenticate challenge; RFC 6750 §3 adds one to
    insufficient_scope and to a malformed bearer request (as the sidecar answers both). Nothing
    else has one."""
    needs = leaf.http_status == 401 or leaf.error == "insufficient_scope" or leaf is errors.MalformedBearerRequest
    assert (leaf.challenge is not None) == needs
    if leaf.challenge is not None:
        assert leaf.challenge.split()[0] in {"Basic", "Bearer"} and 'realm="{realm}"' in leaf.challenge


def _run(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_the_table_does_not_depend_on_what_was_imported() -> None:
    """errors.LEAVES, read right after importing errors alone, lists every concrete error class that
    exists once the whole token_service package is imported (no leaf defined elsewhere)."""
    alone = _run(
        "import json; from token_service import errors; print(json.dumps([c.__name__ for c in errors.leaves()]))"
    )
    everything = _run(
        "import importlib, json, pkgutil, token_service\n"
        "from token_service import errors\n"
        "for m in pkgutil.walk_packages(token_service.__path__, 'token_service.'):\n"
        "    if '.migrations' not in m.name:  # alembic scripts run only under alembic\n"
        "        importlib.import_module(m.name)\n"
        "seen, todo = set(), [errors.TokenServiceError]\n"
        "while todo:\n"
        "    cls = todo.pop(); seen.add(cls); todo.extend(cls.__subclasses__())\n"
        "abstract = {errors.TokenServiceError, errors.GrantError, errors.AdminError}\n"
        "print(json.dumps(sorted(c.__name__ for c in seen - abstract)))"
    )
    assert sorted(alone) == everything
