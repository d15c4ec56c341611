"""``native-iam demo``: the whole mesh on one machine, no root, nothing installed by hand.

Starts, in order: the token service on SQLite in a data directory (seeded with an admin, a demo
identity with a password and a policy, a public OAuth client for curl and one for the browser
sign-in, :mod:`native_iam.demo_login`), the sidecar, a sample
upstream and a real Envoy in front of it. Then it prints ready-to-paste commands, or with
``--check`` runs them itself and exits non-zero if any answer is not what it should be.
Ctrl-C (or SIGTERM) stops every process, last started first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

from native_iam import demo_login
from native_iam._procs import Process, ProcessFailed, Supervisor, envoy_binary, free_port, native_iam_command, port_open
from native_iam._upstream import serve_in_thread

__all__ = ["main"]

DEMO_CLIENT = "demo-cli"
ADMIN_IDENTITY = "admin"
DEMO_IDENTITY = "demo"

# Default ports, as the docs' examples assume; a busy one is replaced by a free one.
DEFAULT_PORTS = {
    "envoy": 10000,
    "envoy_admin": 9901,
    "token_grpc": 50051,
    "token_http": 8080,
    "token_metrics": 9464,
    "authz": 9191,
    "sidecar_oauth": 9192,
    "sidecar_metrics": 9465,
    "upstream": 8000,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="native-iam demo",
        description="Run token service + sidecar + Envoy + a sample upstream on this machine.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".native-iam/demo"), help="default: %(default)s")
    parser.add_argument(
        "--reset", action="store_true", help="delete the data directory first (default: reuse it: same users, keys)"
    )
    parser.add_argument("--free-ports", action="store_true", help="use free ports instead of the defaults")
    parser.add_argument(
        "--check", action="store_true", help="run the printed commands, report each answer, stop, exit 0 if all good"
    )
    return parser


@dataclass(frozen=True)
class Credentials:
    """What the demo needs in the clear to print its commands. Kept in the data dir, mode 0600:
    demo passwords only; the token service itself stores only argon2id hashes."""

    admin_password: str
    demo_password: str

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        if path.exists():
            data = json.loads(path.read_text())
            return cls(data["admin_password"], data["demo_password"])
        creds = cls(secrets.token_urlsafe(12), secrets.token_urlsafe(12))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"admin_password": creds.admin_password, "demo_password": creds.demo_password}, f)
        return creds


def _choose_ports(free: bool) -> dict[str, int]:
    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        if free or port_open("127.0.0.1", default):
            port = free_port()
            while port in ports.values():
                port = free_port()
            if not free:
                _say(f"  port {default} ({name}) is busy; using {port}")
            ports[name] = port
        else:
            ports[name] = default
    return ports


def _say(message: str) -> None:
    print(message, flush=True)


def _token_service_env(data_dir: Path, ports: dict[str, int], creds: Credentials, feed_token: str) -> dict[str, str]:
    return {
        "SYSTEM_DB_URL": f"sqlite:///{(data_dir / 'token-service.db').resolve()}",
        "NATIVE_IAM_GRPC_LISTEN": f"127.0.0.1:{ports['token_grpc']}",
        "NATIVE_IAM_HTTP_LISTEN": f"127.0.0.1:{ports['token_http']}",
        "NATIVE_IAM_METRICS_LISTEN": f"127.0.0.1:{ports['token_metrics']}",
        "NATIVE_IAM_ISSUER": f"http://127.0.0.1:{ports['token_http']}",
        "NATIVE_IAM_BOOTSTRAP_ADMIN": ADMIN_IDENTITY,
        "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD": creds.admin_password,
        "NATIVE_IAM_FEED_TOKEN": feed_token,
        "NATIVE_IAM_LOG_FORMAT": "text",
    }


def envoy_config(ports: Mapping[str, int], access_log: Path) -> str:
    """The demo's Envoy configuration (``demo_envoy.yaml``) for these ports (the tests run it too)."""
    template = Template((Path(__file__).parent / "demo_envoy.yaml").read_text())
    return template.substitute(
        envoy_port=ports["envoy"],
        envoy_admin_port=ports["envoy_admin"],
        authz_port=ports["authz"],
        upstream_port=ports["upstream"],
        access_log=str(access_log.resolve()),
    )


def _sidecar_env(ports: dict[str, int], feed_token: str) -> dict[str, str]:
    return {
        "NATIVE_IAM_FEED_TOKEN": feed_token,
        "NATIVE_IAM_TOKEN_URL": f"127.0.0.1:{ports['token_grpc']}",
        "NATIVE_IAM_ISSUER": f"http://127.0.0.1:{ports['token_http']}",
        "NATIVE_IAM_AUTHZ_LISTEN": f"127.0.0.1:{ports['authz']}",
        "NATIVE_IAM_OAUTH_LISTEN": f"127.0.0.1:{ports['sidecar_oauth']}",
        "NATIVE_IAM_METRICS_LISTEN": f"127.0.0.1:{ports['sidecar_metrics']}",
        "NATIVE_IAM_WORKERS": "1",
        "NATIVE_IAM_LOG_FORMAT": "text",
    }


async def _seed(env: dict[str, str], creds: Credentials, ports: Mapping[str, int]) -> None:
    """Admin, demo identity and the public demo clients (CLI and browser), written straight to the database.

    Idempotent, so a reused data directory keeps its keys and tokens."""
    from token_service.admin import ensure_identity
    from token_service.cli import DEMO_POLICY, bootstrap_admin
    from token_service.clients import new_client
    from token_service.core import Core
    from token_service.settings import Settings
    from token_service.store.clients import ClientRepository, client_secret_key

    settings = Settings.from_env(env)
    core = Core.build(settings)
    await core.start()
    try:
        await bootstrap_admin(core, ADMIN_IDENTITY, creds.admin_password)
        await ensure_identity(core, "", DEMO_IDENTITY, creds.demo_password, DEMO_POLICY)
        repo = ClientRepository(core.store, cache_ttl_s=0.001)
        if await repo.get_client(DEMO_CLIENT) is None:
            key = await client_secret_key(core.store, None)
            client, _ = new_client(DEMO_CLIENT, auth_method="none", server_key=key, name="native-iam demo CLI")
            await repo.create(client)
        await demo_login.ensure_web_client(core, await client_secret_key(core.store, None), ports)
    finally:
        await core.close()


def _http(method: str, url: str, *, form: dict[str, str] | None = None, token: str | None = None) -> tuple[int, dict]:
    """One HTTP request with the stdlib; returns (status, JSON body or {})."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http://127.0.0.1 only
    if form is not None:
        request.add_header("content-type", "application/x-www-form-urlencoded")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, {}


def _grpc_serving(target: str) -> Callable[[], bool]:
    from native_iam.runtime import health

    return lambda: health.serving(target)


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return _http("GET", url)[0] == 200
        except OSError:
            return False

    return check


def _start_everything(sup: Supervisor, data_dir: Path, ports: dict[str, int], creds: Credentials) -> None:
    logs = data_dir / "logs"
    # The revocation feed's credential, shared by the two processes of this run only.
    feed_token = secrets.token_hex(32)
    env = _token_service_env(data_dir, ports, creds, feed_token)

    _say("[1/5] preparing the database (schema, signing key, admin, demo identity, demo client)…")
    asyncio.run(_seed(env, creds, ports))

    _say(f"[2/5] starting the token service (gRPC :{ports['token_grpc']}, HTTP :{ports['token_http']})…")
    token_service = sup.start(
        Process("token-service", native_iam_command("token-service"), log_path=logs / "token-service.log", env=env)
    )
    token_service.wait_until(
        _http_ok(f"http://127.0.0.1:{ports['token_http']}/readyz"), timeout=60, what="ready (/readyz)"
    )

    _say(f"[3/5] starting the sidecar (ext_authz :{ports['authz']})…")
    sidecar = sup.start(
        Process(
            "sidecar", native_iam_command("sidecar"), log_path=logs / "sidecar.log", env=_sidecar_env(ports, feed_token)
        )
    )
    sidecar.wait_until(
        _grpc_serving(f"127.0.0.1:{ports['authz']}"), timeout=60, what="ready (keys loaded, feed synced)"
    )

    _say(f"[4/5] starting the sample upstream (:{ports['upstream']})…")
    serve_in_thread("127.0.0.1", ports["upstream"])

    _say(f"[5/5] starting Envoy (:{ports['envoy']})…")
    config = data_dir / "envoy.yaml"
    config.write_text(envoy_config(ports, logs / "envoy-access.log"))
    envoy = sup.start(
        Process(
            "envoy",
            [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--log-level", "warn"],
            log_path=logs / "envoy.log",
        )
    )
    envoy.wait_until(_http_ok(f"http://127.0.0.1:{ports['envoy_admin']}/ready"), timeout=60, what="ready")


def _commands(ports: dict[str, int], creds: Credentials, verifier: str) -> str:
    http = f"http://127.0.0.1:{ports['token_http']}"
    envoy = f"http://127.0.0.1:{ports['envoy']}"
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    grpc_body = json.dumps({"identity": DEMO_IDENTITY, "password": creds.demo_password, "scopes": ["orders:read"]})
    return f"""
Everything is up. Logs: see the data directory's logs/ folder. Ctrl-C stops everything.

# 1. Get a token for the demo identity (password grant, public client {DEMO_CLIENT}):
TOKEN=$(curl -s {http}/oauth2/token -d grant_type=password -d client_id={DEMO_CLIENT} \\
  -d username={DEMO_IDENTITY} -d password='{creds.demo_password}' -d scope=orders:read | {extract})
#    or over gRPC (grpcurl, if installed; reflection is on):
grpcurl -plaintext -d '{grpc_body}' 127.0.0.1:{ports["token_grpc"]} native_iam.oauth.v1.OAuth/CreateTokenWithPassword

# 2. Allowed: GET /orders needs orders:read; the upstream echoes the identity headers it got.
curl -i {envoy}/orders -H "Authorization: Bearer $TOKEN"
# 3. Denied 403 insufficient_scope: POST /orders needs orders:write, /admin needs orders:admin.
curl -i -X POST {envoy}/orders -H "Authorization: Bearer $TOKEN"
# 4. Anonymous route, no token needed; and a protected route without a token (401):
curl -i {envoy}/public
curl -i {envoy}/orders
# 5. Revoke the token (RFC 7009), then the next call is 401 invalid_token:
curl -i {http}/oauth2/revoke -d client_id={DEMO_CLIENT} -d token="$TOKEN"
curl -i {envoy}/orders -H "Authorization: Bearer $TOKEN"
{demo_login.commands(ports, DEMO_IDENTITY, creds.demo_password, verifier)}
Admin token: native-iam admin --url 127.0.0.1:{ports["token_grpc"]} token {ADMIN_IDENTITY}
  (admin password: {creds.admin_password})
Metrics: http://127.0.0.1:{ports["token_metrics"]}/metrics (token service)
         http://127.0.0.1:{ports["sidecar_metrics"]}/metrics (sidecar)
"""


def _check(ports: dict[str, int], creds: Credentials, verifier: str) -> bool:
    """Run the printed flow; print one line per step; True when every answer is as expected."""
    http = f"http://127.0.0.1:{ports['token_http']}"
    envoy = f"http://127.0.0.1:{ports['envoy']}"
    ok = True

    def expect(what: str, got: int, want: int, detail: str = "") -> None:
        nonlocal ok
        good = got == want
        ok = ok and good
        _say(f"  {'ok  ' if good else 'FAIL'} {what}: {got} (want {want}){' ' + detail if detail else ''}")

    status, body = _http(
        "POST",
        f"{http}/oauth2/token",
        form={
            "grant_type": "password",
            "client_id": DEMO_CLIENT,
            "username": DEMO_IDENTITY,
            "password": creds.demo_password,
            "scope": "orders:read",
        },
    )
    expect("password grant", status, 200, f"scope={body.get('scope')!r}")
    token = body.get("access_token", "")
    status, body = _http("GET", f"{envoy}/orders", token=token)
    headers = body.get("identity_headers", {})
    expect("GET /orders with orders:read", status, 200, f"identity header={headers.get('x-native-iam-identity')!r}")
    ok = ok and headers.get("x-native-iam-identity") == DEMO_IDENTITY
    expect("POST /orders without orders:write", _http("POST", f"{envoy}/orders", form={}, token=token)[0], 403)
    expect("GET /admin without orders:admin", _http("GET", f"{envoy}/admin", token=token)[0], 403)
    expect("GET /public anonymous", _http("GET", f"{envoy}/public")[0], 200)
    expect("GET /orders without a token", _http("GET", f"{envoy}/orders")[0], 401)
    status, _ = _http("POST", f"{http}/oauth2/revoke", form={"client_id": DEMO_CLIENT, "token": token})
    expect("revoke", status, 200)
    started = time.monotonic()
    status = 200
    while status == 200 and time.monotonic() - started < 5:
        status = _http("GET", f"{envoy}/orders", token=token)[0]
    expect("GET /orders after revoke", status, 401, f"after {1000 * (time.monotonic() - started):.0f} ms")
    browser_token = demo_login.check(ports, DEMO_IDENTITY, creds.demo_password, verifier, expect)
    expect("GET /orders with the browser sign-in's token", _http("GET", f"{envoy}/orders", token=browser_token)[0], 200)
    return ok


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    data_dir: Path = args.data_dir
    if args.reset and data_dir.exists():
        _say(f"removing {data_dir} (--reset)")
        shutil.rmtree(data_dir)
    elif data_dir.exists():
        _say(f"reusing {data_dir} (pass --reset to start from scratch)")
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = Credentials.load_or_create(data_dir / "demo-credentials.json")
    ports = _choose_ports(args.free_ports or args.check)
    # PKCE verifier of the printed sign-in URL (a new one each run; the URL and the curl match).
    verifier = secrets.token_urlsafe(48)

    stop_requested = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Supervisor() as sup:
        try:
            _start_everything(sup, data_dir, ports, creds)
        except ProcessFailed as exc:
            _say(f"native-iam demo: {exc}")
            return 1
        if args.check:
            _say("checking the flow:")
            good = _check(ports, creds, verifier)
            _say("all good" if good else "some checks FAILED (logs are in the data directory)")
            return 0 if good else 1
        _say(_commands(ports, creds, verifier))
        while not stop_requested:
            dead = [p for p in sup.processes if not p.running()]
            if dead:
                _say(f"native-iam demo: {dead[0].name} stopped unexpectedly; last log lines:\n{dead[0].log_tail()}")
                return 1
            time.sleep(0.2)
        _say("stopping…")
    _say("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
