"""The error tree: every leaf sets its codes explicitly, and seed statuses exist in the RPCs' enums."""

from __future__ import annotations

import grpc
import pytest

from native_iam.oauth.v1 import oauth_pb2
from token_service import errors

LEAVES = errors.leaves()


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda c: c.__name__)
def test_leaf_sets_every_code_itself(leaf: type[errors.TokenServiceError]) -> None:
    """status, error, http_status and grpc_code are set on the leaf, not inherited (Authlib's drift)."""
    for attribute in ("status", "error", "http_status", "grpc_code", "default_message"):
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
