"""`native-iam token-service`: starts, bootstraps, prints how to call it, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.conftest import one_line_refusal
from tests.token_service.conftest import _fresh_postgres_database
from token_service.cli.main import main


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SYSTEM_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "NATIVE_IAM_GRPC_LISTEN": "127.0.0.1:0",
        "NATIVE_IAM_METRICS_LISTEN": "off",
        "NATIVE_IAM_ARGON2_MEMORY_KIB": "256",
        "NATIVE_IAM_ARGON2_TIME_COST": "1",
        "NATIVE_IAM_LOG_FORMAT": "json",
        **extra,
    }


def _read_banner(process: subprocess.Popen[str]) -> str:
    """stdout up to the banner's last line ("Stop with …"); fails if the service exits first."""
    banner = ""
    while "Stop with" not in banner:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line, "the service exited before printing its banner"
        banner += line
    return banner


def test_demo_prints_working_credentials_and_stops_on_sigterm(tmp_path: Path) -> None:
    """--demo prints a target and demo credentials that work; SIGTERM exits 0 within the grace."""
    process = subprocess.Popen(
        [sys.executable, "-m", "native_iam.cli", "token-service", "--demo"],
        env=_env(tmp_path, NATIVE_IAM_BOOTSTRAP_ADMIN="root", NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD="root-pass-123"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = ""
        deadline = time.monotonic() + 30
        while "Stop with" not in banner and time.monotonic() < deadline:
            line = process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            banner += line
        target = re.search(r"running on (\S+) ", banner)
        password = re.search(r"demo identity : demo / (\S+)", banner)
        assert target and password, banner + process.stderr.read()  # type: ignore[union-attr]
        with grpc.insecure_channel(target.group(1)) as channel:
            stub = oauth_pb2_grpc.OAuthStub(channel)
            response = stub.CreateTokenWithPassword(
                oauth_pb2.CreateTokenWithPasswordRequest(identity="demo", password=password.group(1)), timeout=10
            )
            assert response.status == oauth_pb2.CreateTokenWithPasswordResponse.OK
            admin = stub.CreateTokenWithPassword(
                oauth_pb2.CreateTokenWithPasswordRequest(
                    identity="root", password="root-pass-123", scopes=["iam:admin"]
                ),
                timeout=10,
            )
            assert admin.status == oauth_pb2.CreateTokenWithPasswordResponse.OK
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        logs = process.stderr.read()  # type: ignore[union-attr]
        assert "root-pass-123" not in logs and response.access_token not in logs
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_configuration_exits_2(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """A bad env var exits with status 2 and a message naming it."""
    monkeypatch.setenv("NATIVE_IAM_SIGNING_ALG", "none")
    assert main([]) == 2
    assert "NATIVE_IAM_SIGNING_ALG" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_workers_share_the_port_and_merge_metrics(tmp_path: Path) -> None:
    """NATIVE_IAM_WORKERS=2: two serving processes behind one gRPC port, one metrics endpoint
    summing both, and SIGTERM stops them all with exit 0."""
    grpc_port, http_port, metrics_port = _free_port(), _free_port(), _free_port()
    env = _env(
        tmp_path,
        NATIVE_IAM_WORKERS="2",
        NATIVE_IAM_GRPC_LISTEN=f"127.0.0.1:{grpc_port}",
        NATIVE_IAM_HTTP_LISTEN=f"127.0.0.1:{http_port}",
        NATIVE_IAM_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "native_iam.cli", "token-service", "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = _read_banner(process)
        password = re.search(r"demo identity : demo / (\S+)", banner)
        assert password
        statuses = []
        for _ in range(6):  # new channels: the kernel spreads their connections over the workers
            with grpc.insecure_channel(
                f"127.0.0.1:{grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)]
            ) as channel:
                response = oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
                    oauth_pb2.CreateTokenWithPasswordRequest(identity="demo", password=password.group(1)), timeout=10
                )
                statuses.append(response.status)
        assert statuses == [oauth_pb2.CreateTokenWithPasswordResponse.OK] * 6
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False)
        assert len(children.stdout.split()) >= 2
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as scrape:
            text = scrape.read().decode()
        assert re.search(r'native_iam_grants_total\{grant="password",status="OK"\} 6\.0', text), text[:2000]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_workers_share_one_argon2_thread_per_core(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With NATIVE_IAM_WORKERS=2 on 2 cores each worker verifies passwords on 1 thread, not 2."""
    from token_service.cli.main import _worker_settings
    from token_service.settings import Settings

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    worker = _worker_settings(Settings.from_env({}, workers=2))
    assert (worker.password_workers, worker.metrics_listen) == (1, "off")


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_workers_refuse_a_revoked_token_at_once(tmp_path: Path, db: str, request: pytest.FixtureRequest) -> None:
    """NATIVE_IAM_WORKERS=2 with a slow feed poll: after an admin disables a token through one
    worker, CheckAccess on fresh connections (spread over both workers) refuses it at once — on
    SQLite and on PostgreSQL (the production overlay's setting)."""
    from native_iam.admin.v1 import admin_pb2, admin_pb2_grpc

    database = {}
    if db == "postgres":
        server = request.getfixturevalue("postgres_server")
        database["SYSTEM_DB_URL"] = asyncio.run(_fresh_postgres_database(server.get_uri()))
    grpc_port, http_port = _free_port(), _free_port()
    env = _env(
        tmp_path,
        **database,
        NATIVE_IAM_WORKERS="2",
        NATIVE_IAM_GRPC_LISTEN=f"127.0.0.1:{grpc_port}",
        NATIVE_IAM_HTTP_LISTEN=f"127.0.0.1:{http_port}",
        NATIVE_IAM_FEED_POLL_S="30",  # the other worker's tail would see the event only much later
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "native_iam.cli", "token-service", "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    target = f"127.0.0.1:{grpc_port}"
    options = [("grpc.use_local_subchannel_pool", 1)]

    def statuses(token: str) -> set[int]:
        seen = set()
        for _ in range(8):  # new channels: the kernel spreads their connections over the workers
            with grpc.insecure_channel(target, options=options) as channel:
                answer = oauth_pb2_grpc.OAuthStub(channel).CheckAccess(
                    oauth_pb2.CheckAccessRequest(access_token=token), timeout=10
                )
                seen.add(answer.status)
        return seen

    try:
        banner = _read_banner(process)
        demo = re.search(r"demo identity : demo / (\S+)", banner)
        admin = re.search(r"admin identity: (\S+) / (\S+)", banner)
        assert demo and admin
        with grpc.insecure_channel(target) as channel:
            stub = oauth_pb2_grpc.OAuthStub(channel)
            token = stub.CreateTokenWithPassword(
                oauth_pb2.CreateTokenWithPasswordRequest(identity="demo", password=demo.group(1)), timeout=10
            ).access_token
            admin_token = stub.CreateTokenWithPassword(
                oauth_pb2.CreateTokenWithPasswordRequest(identity=admin.group(1), password=admin.group(2)), timeout=10
            ).access_token
        assert statuses(token) == {oauth_pb2.CheckAccessResponse.OK}  # cached in both workers now
        jti = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
        with grpc.insecure_channel(target) as channel:
            admin_pb2_grpc.TokensStub(channel).SetTokenEnabled(
                admin_pb2.SetTokenEnabledRequest(jti=jti, enabled=False),
                metadata=(("authorization", f"Bearer {admin_token}"),),
                timeout=10,
            )
        assert statuses(token) == {oauth_pb2.CheckAccessResponse.TOKEN_DISABLED}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_LISTENERS = {
    "NATIVE_IAM_GRPC_LISTEN": "--grpc-listen",
    "NATIVE_IAM_HTTP_LISTEN": "--http-listen",
    "NATIVE_IAM_METRICS_LISTEN": "--metrics-listen",
}


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("variable", list(_LISTENERS))
def test_a_busy_port_is_one_line_naming_the_address_and_setting(tmp_path: Path, variable: str, workers: str) -> None:
    """Each listener's port already taken: exit 1 with one line naming the address, the variable and
    the flag — no traceback — with one process and with several workers."""
    addresses = {name: f"127.0.0.1:{_free_port()}" for name in _LISTENERS}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        addresses[variable] = busy
        result = subprocess.run(
            [sys.executable, "-m", "native_iam.cli", "token-service"],
            env=_env(tmp_path, **addresses, NATIVE_IAM_WORKERS=workers),
            capture_output=True,
            text=True,
            timeout=90,
        )
    line = one_line_refusal(result, "native-iam token-service: ")
    assert busy in line and variable in line and _LISTENERS[variable] in line, line


def test_http_listen_flag_overrides_the_variable(tmp_path: Path) -> None:
    """--http-listen sets the OAuth HTTP address (over NATIVE_IAM_HTTP_LISTEN), like --grpc-listen."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "native_iam.cli", "token-service", "--demo", "--http-listen", f"127.0.0.1:{port}"],
        env=_env(tmp_path, NATIVE_IAM_HTTP_LISTEN="127.0.0.1:1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _read_banner(process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_a_bad_cluster_issuers_file_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    """NATIVE_IAM_CLUSTER_ISSUERS_FILE with a mistake stops start-up with one line, no traceback."""
    trust = tmp_path / "issuers.json"
    trust.write_text('{"issuers": [{"issuer": "https://cluster.example", "service_accounts": {"shop:x": "c"}}]}')
    result = subprocess.run(
        [sys.executable, "-m", "native_iam.cli", "token-service"],
        env=_env(tmp_path, NATIVE_IAM_CLUSTER_ISSUERS_FILE=str(trust)),
        capture_output=True,
        text=True,
        timeout=90,
    )
    # A configuration error exits 2, as every bad setting does (one_line_refusal's exit 1 is a busy port).
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("native-iam token-service: configuration error: NATIVE_IAM_CLUSTER_ISSUERS_FILE")
    assert "shop:x" in lines[0]
