"""Scenario 4: how fast a revocation reaches enforcement.

A. Through Envoy: a token in use (its decision cached by the sidecar) is revoked; the harness
   polls through Envoy until it gets 401 and records revoke → first 401.
B. Fan-out: N simulated sidecars (``bench/feed_subscribers.py``, one connection each) watch the
   token service's feed; for each revocation, revoke → the last subscriber to receive it.

Both on PostgreSQL (replicas wake on NOTIFY) and on SQLite (the feed tails the table every
NATIVE_IAM_FEED_POLL_S, default 0.5 s).
"""

from __future__ import annotations

import http.client
import sys
import time

import grpc
import jwt

from bench import _envoy, _load, _stack, _token_service
from bench._context import Bench
from bench._report import ms
from bench.feed_subscribers import Fleet
from bench.scenario_token_service import _wait_for_grant
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc

SUBSCRIBER_PROCESSES = 2
#: Revocations timed in B (p99 over these; each takes 0.25 s plus the fan-out).
FAN_OUT_REVOCATIONS = 50


class Revoker:
    """Disables tokens through the token service's admin gRPC API (Tokens.SetTokenEnabled)."""

    label = "admin gRPC API (`native_iam.admin.v1.Tokens/SetTokenEnabled`, enabled=false)"

    def __init__(self, service: _token_service.TokenService) -> None:
        self._admin = _token_service.Admin(service)

    def revoke(self, jti: str) -> None:
        self._admin.disable_token(jti)

    def close(self) -> None:
        self._admin.close()


def _access_tokens(service: _token_service.TokenService, refresh_token: str, count: int) -> list[str]:
    with grpc.insecure_channel(service.grpc) as channel:
        stub = oauth_pb2_grpc.OAuthStub(channel)
        tokens = []
        for _ in range(count):
            answer = stub.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=refresh_token), timeout=10)
            if answer.status != answer.OK:
                raise RuntimeError(f"refresh grant answered {answer.status}")
            tokens.append(answer.access_token)
    return tokens


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def _get(conn: http.client.HTTPConnection, token: str) -> int:
    conn.request("GET", "/", headers={"authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.read()
    return response.status


def _through_envoy(
    bench: Bench, service: _token_service.TokenService, tokens: list[str], revoker: Revoker
) -> list[float]:
    workers = bench.options.sidecar_workers[-1]
    sidecar, _ = _stack.start_sidecar(
        bench.workdir,
        token_url=service.grpc,
        workers=workers,
        issuer=_token_service.ISSUER,
        audience=_token_service.AUDIENCE,
        name=f"sidecar-s4-{service.db}",
    )
    try:
        envoy, port = _envoy.start_envoy(
            "ext_authz",
            bench.workdir,
            concurrency=bench.options.envoy_concurrency,
            scope=_token_service.SCOPE,
            authz_port=sidecar.address.rsplit(":", 1)[1],
            authz_streams=16,
        )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            delays = []
            for token in tokens:
                for _ in range(2):  # in use: the sidecar has decided (and cached) it
                    if (status := _get(conn, token)) != 200:
                        raise RuntimeError(f"a fresh token got HTTP {status} through Envoy")
                started = time.time()
                revoker.revoke(_jti(token))
                deadline = started + 10
                while _get(conn, token) != 401:
                    if time.time() > deadline:
                        raise RuntimeError("a revoked token still passed after 10 s")
                    time.sleep(0.0005)
                delays.append(time.time() - started)
            conn.close()
            return sorted(delays)
        finally:
            envoy.stop()
    finally:
        sidecar.stop()


def _fan_out(
    bench: Bench, service: _token_service.TokenService, tokens: list[str], revoker: Revoker
) -> tuple[list[float], int, float]:
    """Per revocation: seconds from revoke to its last subscriber; plus how many got it, and the
    subscribers' CPU."""
    fleet = Fleet.start(
        bench.workdir, service.grpc, bench.options.subscribers, tag=f"-{service.db}", processes=SUBSCRIBER_PROCESSES
    )
    try:
        fleet.wait_synced()
        cpu_before = fleet.cpu_seconds()
        revoked: dict[str, float] = {}
        for token in tokens:
            jti = _jti(token)
            revoked[jti] = time.time()
            revoker.revoke(jti)
            time.sleep(0.25)
        time.sleep(2.0)
        cpu = fleet.cpu_seconds() - cpu_before
    finally:
        fleet.stop()
    lasts = fleet.last_arrivals(revoked)
    return lasts, len(lasts), cpu


def run(bench: Bench) -> None:
    if not (_stack.sidecar_available() and _stack.token_service_available()):
        bench.report.not_measured.append("Scenario 4: needs both the sidecar and the token service.")
        return
    through = bench.report.section(
        "4. Revocation propagation",
        "A: revoke a token in use, then poll through Envoy (ext_authz → sidecar fed by the real token "
        f"service) until 401. B: {bench.options.subscribers:,} simulated sidecars (one gRPC connection and "
        f"`WatchRevocations` stream each, in {SUBSCRIBER_PROCESSES} Python processes) on the token service; "
        "revoke → the last subscriber to receive the event. Revocations are made with the token "
        f"service's {Revoker.label}.",
        ["db", "what", "revocations", "p50 ms", "p90 ms", "p99 ms", "max ms", "notes"],
    )
    results: dict[str, tuple[list[float], list[float]]] = {}
    # The smoke run proves the path once; PostgreSQL is the multi-replica configuration, and the
    # production overlay's (NATIVE_IAM_WORKERS=2: each worker fans out to its share of streams).
    configs = [("postgresql", 1)]
    if not bench.options.smoke:
        configs += [("postgresql", w) for w in bench.options.token_service_workers if w > 1]
        configs.append(("sqlite", 1))
    for db, workers in configs:
        label = db if workers == 1 else f"{db} ×{workers} workers"
        service = bench.start_token_service(4, db, workers, label)
        if service is None:
            continue
        revoker = None
        try:
            grant = _wait_for_grant(service)  # also: the bootstrap admin exists now
            revoker = Revoker(service)
            delays: list[float] = []
            if workers == 1:  # A measures the sidecar's side: once per database is enough
                tokens = _access_tokens(service, grant.refresh_token, bench.options.revocations)
                delays = _through_envoy(bench, service, tokens, revoker)
                _row(through, label, "A: revoke → 401 through Envoy", delays, "")
                panel = bench.report.latencies.setdefault(
                    "Scenario 4: revoke (admin API) → first 401 through Envoy", {}
                )
                panel[db] = delays
            fan_tokens = _access_tokens(service, grant.refresh_token, 5 if bench.options.smoke else FAN_OUT_REVOCATIONS)
            print(f"bench:   {bench.options.subscribers} subscribers on {label}", file=sys.stderr, flush=True)
            lasts, complete, cpu = _fan_out(bench, service, fan_tokens, revoker)
            note = f"{complete}/{len(fan_tokens)} reached every subscriber; subscribers' CPU {cpu:.1f} s"
            _row(through, label, f"B: revoke → last of {bench.options.subscribers:,} subscribers", lasts, note)
            results[label] = (delays, lasts)
        finally:
            if revoker is not None:
                revoker.close()
            service.stop()
    for db, (delays, lasts) in results.items():
        if delays:
            p99 = _load.percentile(delays, 99)
            bench.report.target(
                f"revoke → 401 through Envoy, p99 ({db})", "≤ 50 ms", f"{p99 * 1000:.1f} ms", p99 <= 0.050
            )
        if lasts:
            p99 = _load.percentile(lasts, 99)
            bench.report.target(
                f"revoke → last of {bench.options.subscribers:,} feed subscribers, p99 ({db})",
                "≤ 250 ms",
                f"{p99 * 1000:.1f} ms",
                p99 <= 0.250,
            )


def _row(section: object, db: str, what: str, values: list[float], note: str) -> None:
    p = {q: _load.percentile(values, q) for q in (50, 90, 99)}
    section.rows.append(  # type: ignore[attr-defined]
        [db, what, str(len(values)), ms(p[50]), ms(p[90]), ms(p[99]), ms(values[-1]) if values else "–", note]
    )
