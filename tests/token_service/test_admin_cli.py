"""`native-iam admin`: bootstrap into the database, get a token, manage over gRPC (tables and JSON)."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from token_service.admin_cli import main
from token_service.app import TokenServiceApp


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
