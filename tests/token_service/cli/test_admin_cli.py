"""`native-iam admin`: bootstrap into the database, get a token, manage over gRPC (tables and JSON)."""

from __future__ import annotations

import asyncio
import io
import json
import re

import jwt
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.conftest import add_identity
from token_service.app import TokenServiceApp
from token_service.cli.admin import main
from token_service.grants import _issue
from token_service.tokens import new_jti


async def _run(argv: list[str], stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = await asyncio.to_thread(main, argv, io.StringIO(stdin), out)
    return code, out.getvalue()


async def test_bootstrap_then_token_then_admin_calls(service: TokenServiceApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """bootstrap writes the admin to SYSTEM_DB_URL; `token` gets an iam:admin token; commands use it."""
    monkeypatch.setenv("SYSTEM_DB_URL", service.settings.db_url)
    monkeypatch.setenv("NATIVE_IAM_ARGON2_MEMORY_KIB", "256")
    monkeypatch.setenv("NATIVE_IAM_ARGON2_TIME_COST", "1")
    code, out = await _run(["bootstrap", "ops", "--password-stdin"], "ops-pass-123\n")
    assert code == 0 and "ops" in out
    url = service.grpc_target
    code, token = await _run(["--url", url, "token", "ops", "--password-stdin"], "ops-pass-123\n")
    assert code == 0
    monkeypatch.setenv("NATIVE_IAM_ADMIN_TOKEN", token.strip())
    code, out = await _run(["--url", url, "identities", "create", "web", "-n", "shop", "--policy", "orders:read"])
    assert code == 0 and out.split("\n")[0].split() == ["NAMESPACE", "NAME", "STATE", "PASSWORD", "POLICY"]
    code, out = await _run(["--url", url, "--json", "identities", "list", "-n", "shop"])
    assert code == 0
    (listed,) = json.loads(out)["identities"]
    assert (listed["namespace"], listed["name"], listed["enabled"], listed["policy"]) == (
        "shop",
        "web",
        True,
        ["orders:read"],
    )
    code, out = await _run(["--url", url, "tokens", "list", "-i", "ops"])
    assert code == 0 and "access_token" in out and token.strip() not in out
    code, out = await _run(["--url", url, "keys", "list"])
    assert code == 0 and "signing" in out


async def test_call_without_token_exits_2(service: TokenServiceApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --token or NATIVE_IAM_ADMIN_TOKEN the CLI says so and exits 2."""
    monkeypatch.delenv("NATIVE_IAM_ADMIN_TOKEN", raising=False)
    code, _ = await _run(["--url", service.grpc_target, "identities", "list"])
    assert code == 2


async def test_refused_call_exits_1(service: TokenServiceApp, capsys: pytest.CaptureFixture[str]) -> None:
    """A token the server refuses gives exit 1 and the gRPC code on stderr."""
    code, _ = await _run(["--url", service.grpc_target, "--token", "nope", "keys", "list"])
    assert code == 1 and "UNAUTHENTICATED" in capsys.readouterr().err


def test_generated_jtis_never_begin_with_a_dash() -> None:
    """A jti is a positional argument of `native-iam admin tokens …`: none generated starts with
    "-" (1 in 64 of base64url ids did), and each is still 22 URL-safe characters (128 bits)."""
    jtis = [new_jti() for _ in range(5000)]
    assert not [jti for jti in jtis if jti.startswith("-")]
    assert all(len(jti) == 22 and re.fullmatch(r"[A-Za-z0-9_-]+", jti) for jti in jtis)
    assert len(set(jtis)) == len(jtis)


@pytest.mark.parametrize("separator", [[], ["--"]], ids=["bare", "double-dash"])
async def test_ids_beginning_with_a_dash_work_as_the_readme_shows(
    service: TokenServiceApp,
    oauth: oauth_pb2_grpc.OAuthStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    separator: list[str],
) -> None:
    """`tokens disable JTI` and `keys retire KID` take ids that begin with "-" (tokens issued before
    the jti fix; key ids are RFC 7638 thumbprints), bare as in docs/token-service.md and after "--"."""
    await add_identity(service.core, "ops", "ops-pass-123", ("iam:admin",))
    admin = await oauth.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="ops", password="ops-pass-123", scopes=["iam:admin"])
    )
    monkeypatch.setattr(_issue, "new_jti", lambda: "-" + new_jti()[1:])
    victim = await oauth.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="ops", password="ops-pass-123")
    )
    jti = jwt.decode(victim.access_token, options={"verify_signature": False})["jti"]
    assert jti.startswith("-")
    common = ["--url", service.grpc_target, "--token", admin.access_token]
    code, _ = await _run([*common, "tokens", "disable", *separator, jti])
    assert code == 0, capsys.readouterr().err
    check = await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=victim.access_token))
    assert check.status != oauth_pb2.CheckAccessResponse.OK
    # A key id beginning with "-" reaches the server (which has no such key), not an argparse error.
    code, _ = await _run([*common, "keys", "retire", *separator, "-NoSuchKeyThumbprint"])
    assert code == 1 and "NOT_FOUND" in capsys.readouterr().err
