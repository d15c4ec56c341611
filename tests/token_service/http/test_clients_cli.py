"""token_service/clients_cli.py: `native-iam admin clients create|list|get|delete`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tests.token_service.http.conftest import PASSWORD, OAuthService
from token_service import clients_cli


@pytest.fixture(autouse=True)
def _no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATIVE_IAM_CLIENT_SECRET_KEY", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = clients_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_prints_secret_once_and_get_never(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """create --json prints the secret; get and list show everything but the secret."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    code, out, _ = run(capsys, "--db-url", db, "--json", "create", "web", "--audience", "https://api", "--rotate")
    created = json.loads(out)
    assert code == 0 and len(created["client_secret"]) >= 43
    assert created["audiences"] == ["https://api"] and created["rotate_refresh_tokens"] is True
    _, out, _ = run(capsys, "--db-url", db, "--json", "get", "web")
    assert "client_secret" not in json.loads(out) and created["client_secret"] not in out
    _, out, _ = run(capsys, "--db-url", db, "list")
    assert out.splitlines()[0].startswith("CLIENT_ID") and "web" in out


def test_public_client_has_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A public client (--auth-method none) gets no secret and rotation by default."""
    code, out, _ = run(
        capsys, "--db-url", f"sqlite:///{tmp_path / 'c.db'}", "--json", "create", "spa", "--auth-method", "none"
    )
    body = json.loads(out)
    assert code == 0 and body["client_secret"] is None and body["rotate_refresh_tokens"] is True


def test_delete_then_get_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """delete removes the client; a second delete or a get exits 1 saying it is not found."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    run(capsys, "--db-url", db, "create", "web")
    assert run(capsys, "--db-url", db, "delete", "web")[0] == 0
    code, _, err = run(capsys, "--db-url", db, "get", "web")
    assert code == 1 and "not found" in err


def test_invalid_client_id_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A client_id with a space is refused with exit code 1 and a message."""
    code, _, err = run(capsys, "--db-url", f"sqlite:///{tmp_path / 'c.db'}", "create", "bad id")
    assert code == 1 and "client_id" in err


async def test_created_client_works_against_the_running_service(oauth_service: OAuthService) -> None:
    """A client created by the CLI on the service's database authenticates at once (same secret key)."""
    argv = ["--db-url", oauth_service.core.settings.db_url, "--json", "create", "cli-made"]
    loop_free = await asyncio.to_thread(_capture_main, argv)
    secret = json.loads(loop_free)["client_secret"]
    async with httpx.AsyncClient(base_url=oauth_service.url) as http:
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD},
            auth=("cli-made", secret),
        )
    assert response.status_code == 200, response.text


def _capture_main(argv: list[str]) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert clients_cli.main(argv) == 0
    return buffer.getvalue()
