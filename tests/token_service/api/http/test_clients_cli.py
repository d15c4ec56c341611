"""token_service/cli/clients.py: `native-iam admin clients create|list|get|delete` over the admin gRPC API."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest

from native_iam import cli
from tests.token_service.api.http.conftest import PASSWORD, OAuthService
from token_service.admin import ensure_identity
from token_service.cli.admin import main


async def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = await asyncio.to_thread(main, argv, io.StringIO(""), out)
    return code, out.getvalue()


@pytest.fixture
async def admin_argv(oauth_service: OAuthService) -> list[str]:
    """`--url … --token …` of an iam:admin identity."""
    await ensure_identity(oauth_service.core, "", "root", PASSWORD, ["iam:admin"])
    url = oauth_service.app.grpc_target
    out = io.StringIO()
    code = await asyncio.to_thread(
        main, ["--url", url, "token", "root", "--password-stdin"], io.StringIO(PASSWORD), out
    )
    assert code == 0
    return ["--url", url, "--token", out.getvalue().strip()]


async def test_create_prints_the_secret_once(oauth_service: OAuthService, admin_argv: list[str]) -> None:
    """create prints a table and the secret; that secret gets tokens; get and list never show it."""
    code, out = await _run([*admin_argv, "clients", "create", "cli-app", "--audience", "https://api", "--rotate"])
    assert code == 0 and out.split("\n")[0].split()[:3] == ["CLIENT_ID", "AUTH_METHOD", "GRANTS"]
    secret = out.split("client_secret: ")[1].split()[0]
    async with httpx.AsyncClient(base_url=oauth_service.url) as http:
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD},
            auth=("cli-app", secret),
        )
    assert response.status_code == 200 and "refresh_token" in response.json()
    for argv in (["clients", "get", "cli-app"], ["clients", "list"], ["--json", "clients", "list"]):
        code, out = await _run([*admin_argv, *argv])
        assert code == 0 and "cli-app" in out and secret not in out


async def test_json_create_of_a_public_client(admin_argv: list[str]) -> None:
    """--json create of a public client: no secret, rotation on, only the chosen grant."""
    code, out = await _run(
        [*admin_argv, "--json", "clients", "create", "spa2", "--auth-method", "none", "--grant", "password"]
    )
    body = json.loads(out)
    assert code == 0 and "client_secret" not in body  # empty proto3 field: omitted from JSON
    assert body["client"]["rotate_refresh_tokens"] is True and body["client"]["grant_types"] == ["password"]


async def test_create_with_the_introspection_permission(admin_argv: list[str]) -> None:
    """--introspect-all grants the introspection permission; the table shows it."""
    code, out = await _run([*admin_argv, "--json", "clients", "create", "rs", "--introspect-all"])
    assert code == 0 and json.loads(out)["client"]["introspect_all_tokens"] is True
    code, out = await _run([*admin_argv, "clients", "get", "rs"])
    header, row = out.splitlines()[:2]
    assert code == 0 and row.split()[header.split().index("INTROSPECT")] == "all"


async def test_delete_then_get_fails(admin_argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """delete removes the client; get then exits 1 with NOT_FOUND."""
    await _run([*admin_argv, "clients", "create", "tmp"])
    assert (await _run([*admin_argv, "clients", "delete", "tmp"]))[0] == 0
    code, _ = await _run([*admin_argv, "clients", "get", "tmp"])
    assert code == 1 and "NOT_FOUND" in capsys.readouterr().err


async def test_invalid_client_id_is_invalid_argument(admin_argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A client_id with a space exits 1 with INVALID_ARGUMENT."""
    code, _ = await _run([*admin_argv, "clients", "create", "bad id"])
    assert code == 1 and "INVALID_ARGUMENT" in capsys.readouterr().err


def test_reachable_from_the_native_iam_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`native-iam admin clients --help` lists the four commands."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["admin", "clients", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("create", "list", "get", "delete")), out


async def test_create_a_service_account_client_that_exchanges(admin_argv: list[str]) -> None:
    """--auth-method kubernetes_service_account prints no secret; --exchange-audience is stored and shown."""
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    code, out = await _run(
        [
            *admin_argv,
            "clients",
            "create",
            "checkout",
            "--auth-method",
            "kubernetes_service_account",
            "--grant",
            grant,
            "--exchange-audience",
            "orders",
            "--exchange-audience",
            "payments",
        ]
    )
    assert code == 0 and "client_secret" not in out
    code, out = await _run([*admin_argv, "--json", "clients", "get", "checkout"])
    body = json.loads(out)
    assert body["exchange_audiences"] == ["orders", "payments"] and body["grant_types"] == [grant]
    code, out = await _run([*admin_argv, "clients", "get", "checkout"])
    header, row = out.splitlines()[:2]
    assert row.split()[header.split().index("EXCHANGE_AUDIENCES")] == "orders,payments"
