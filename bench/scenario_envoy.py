"""Scenarios 1 and 2: requests through one Envoy whose route answers itself (``direct_response``),
so the only cost besides Envoy is authentication: none · Envoy's ``jwt_authn`` · ext_authz to a
canned-OK grpcio server · ext_authz to the sidecar · and over ext_authz's HTTP protocol
(``http_service``): the do-nothing HTTP floor (asyncio + httptools, the sidecar's HTTP server
without the decision) · the sidecar's HTTP transport.

1. Saturation throughput (wrk, HTTP/1.1, keep-alive): requests/s, the ratio to ``jwt_authn``, and
   the authorization server's CPU time per request.
2. Latency at a fixed 1,000 req/s (h2load ``--rps``, per-request log): p50/p99/p99.9.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import _envoy, _load, _stack, _tokens
from bench._context import Bench
from bench._system import CpuMeter

CONNECTIONS = 32  # wrk keep-alive connections at saturation
FIXED_RPS = 1000
JWT_CACHE = "jwt_cache_config: {jwt_cache_size: 1000}"
# h2load clients at FIXED_RPS / FIXED_CLIENTS each, over HTTP/2 so that a slow answer does not
# hold back the next request (no coordinated omission). Few clients: h2load's per-client timers
# fire together, so N clients send bursts of N requests.
FIXED_CLIENTS = 4
FIXED_STREAMS = 16


@dataclass
class Issuer:
    """Who signs the tokens: the real token service (its JWKS, its Feed) or the harness's own key
    with the fake feed (when there is no token service yet)."""

    name: str
    issuer: str
    audience: str
    jwks_json: str
    scope: str
    token: str
    feed_address: str | None = None  # None: start a fake feed per sidecar
    service: object | None = None

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()  # type: ignore[attr-defined]


def _issuer(bench: Bench) -> Issuer:
    if not _stack.token_service_available():
        key = bench.key
        return Issuer(
            "the harness's ES256 key (no token service)",
            _tokens.ISSUER,
            _tokens.AUDIENCE,
            key.jwks_json(),
            _tokens.SCOPE,
            key.access_token(),
        )
    from bench import _token_service
    from bench.scenario_token_service import _wait_for_grant

    service = _token_service.start(
        bench.workdir, db_url=bench.database_url("sqlite", "bench-s1"), name="token-service-s1"
    )
    try:
        grant = _wait_for_grant(service)
        with urllib.request.urlopen(f"http://{service.http}/.well-known/jwks.json", timeout=10) as response:
            jwks = response.read().decode()
    except Exception:
        service.stop()
        raise
    return Issuer(
        "the token service (ES256 access token from its password grant; JWKS from /.well-known/jwks.json; "
        "the sidecar on its Feed)",
        _token_service.ISSUER,
        _token_service.AUDIENCE,
        jwks,
        _token_service.SCOPE,
        grant.access_token,
        feed_address=service.grpc,
        service=service,
    )


@dataclass
class Variant:
    name: str
    config: str
    values: dict[str, object]
    backend: Callable[[], _stack.Server] | None = None
    processes: int = 0  # authorization server processes (for the CPU-per-decision comparison)
    kind: str = "none"  # none | jwt | canned | sidecar
    transport: str = "grpc"  # grpc | http: which ext_authz protocol (canned and sidecar kinds)
    backends: list[_stack.Server] = field(default_factory=list)


@dataclass
class Measured:
    variant: Variant
    saturation: _load.LoadResult | None = None
    saturation_cpu: dict[str, float] = field(default_factory=dict)
    fixed: _load.LoadResult | None = None
    fixed_cpu: dict[str, float] = field(default_factory=dict)

    def authz_us_per_request(self) -> float | None:
        if self.saturation is None or "authz" not in self.saturation_cpu or not self.saturation.requests:
            return None
        return self.saturation_cpu["authz"] / self.saturation.requests * 1e6


def _variants(bench: Bench, issuer: Issuer) -> list[Variant]:
    # JSON inside a single-quoted YAML string: only a quote would need escaping.
    jwt = {"issuer": issuer.issuer, "audience": issuer.audience, "jwks_json": issuer.jwks_json.replace("'", "''")}
    variants = [
        Variant("no auth", "noauth", {}),
        Variant("jwt_authn", "jwt_authn", {**jwt, "jwt_cache": ""}, kind="jwt"),
        Variant("jwt_authn + cache", "jwt_authn", {**jwt, "jwt_cache": JWT_CACHE}, kind="jwt"),
    ]
    for n in bench.options.sidecar_workers:
        variants.append(
            Variant(
                f"ext_authz canned {bench.options.canned_mode} ×{n}",
                "ext_authz",
                {"scope": issuer.scope},
                backend=lambda n=n: bench.start_canned(n),
                processes=n,
                kind="canned",
            )
        )
    for n in bench.options.sidecar_workers:
        variants.append(
            Variant(
                f"ext_authz http canned ×{n}",
                "ext_authz_http",
                {"scope": issuer.scope},
                backend=lambda n=n: bench.start_canned(n, mode="http"),
                processes=n,
                kind="canned",
                transport="http",
            )
        )
    if _stack.sidecar_available():
        for n in bench.options.sidecar_workers:
            variants.append(
                Variant(
                    f"ext_authz sidecar ×{n}",
                    "ext_authz",
                    {"scope": issuer.scope},
                    backend=lambda n=n: _start_sidecar(bench, issuer, n),
                    processes=n,
                    kind="sidecar",
                )
            )
        for n in bench.options.sidecar_workers:
            variants.append(
                Variant(
                    f"ext_authz http sidecar ×{n}",
                    "ext_authz_http",
                    {"scope": issuer.scope},
                    backend=lambda n=n: _start_sidecar(bench, issuer, n),
                    processes=n,
                    kind="sidecar",
                    transport="http",
                )
            )
    else:
        bench.report.not_measured.append("Scenarios 1–2, sidecar: `sidecar/cli.py` is not there yet.")
    return variants


def _start_sidecar(bench: Bench, issuer: Issuer, workers: int) -> _stack.Server:
    if issuer.feed_address is not None:
        sidecar, _ = _stack.start_sidecar(
            bench.workdir,
            token_url=issuer.feed_address,
            workers=workers,
            issuer=issuer.issuer,
            audience=issuer.audience,
            name=f"sidecar-s1-{workers}",
        )
        return sidecar
    feed = _stack.start_fake_feed(bench.workdir, issuer.jwks_json, name=f"feed-s1-{workers}")
    try:
        sidecar, _ = _stack.start_sidecar(
            bench.workdir,
            token_url=feed.address,
            workers=workers,
            issuer=issuer.issuer,
            audience=issuer.audience,
            name=f"sidecar-s1-{workers}",
        )
    except Exception:
        feed.stop()
        raise
    # The feed is part of the set-up, not of the measured path: keep it out of the CPU figures.
    sidecar.processes.insert(0, feed.processes[0])
    sidecar.extra["feed_pid"] = str(feed.processes[0].pid)
    return sidecar


def _status(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own http:// URL
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _sanity(variant: Variant, url: str, token: str) -> None:
    """Fail loudly unless the set-up really authenticates: a valid token passes, none is refused."""
    ok = _status(url, {"authorization": f"Bearer {token}"})
    if ok != 200:
        raise RuntimeError(f"{variant.name}: a valid token got HTTP {ok}, expected 200")
    if variant.kind in {"jwt", "sidecar"}:
        missing = _status(url, {})
        bad = _status(url, {"authorization": f"Bearer {_tokens.tamper(token)}"})
        if missing != 401 or bad != 401:
            raise RuntimeError(f"{variant.name}: no token → {missing}, bad token → {bad}; expected 401 for both")


def _authz_pids(server: _stack.Server) -> list[int]:
    feed = server.extra.get("feed_pid")
    return [pid for pid in server.pids if str(pid) != feed]


def _measure(bench: Bench, variant: Variant, token: str) -> Measured:
    result = Measured(variant)
    backend = variant.backend() if variant.backend else None
    try:
        values = dict(variant.values)
        if backend is not None:
            address = (
                backend.extra["http"] if variant.transport == "http" and variant.kind == "sidecar" else backend.address
            )
            values.update(authz_port=address.rsplit(":", 1)[1], authz_streams=16)
        envoy, port = _envoy.start_envoy(
            variant.config, bench.workdir, concurrency=bench.options.envoy_concurrency, **values
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            _sanity(variant, url, token)
            pids = {"envoy": envoy.pid or 0}
            authz = _authz_pids(backend) if backend else []
            headers = {"authorization": f"Bearer {token}"}
            seconds = bench.options.duration_s
            if bench.wants(1):
                if not bench.options.smoke:  # warm caches, connections and Envoy's pools
                    _load.wrk(url, seconds=1, connections=CONNECTIONS, threads=1, headers=headers)
                bench.settle()
                meter = _TreeMeter(pids, authz).start()
                result.saturation = _load.wrk(url, seconds=seconds, connections=CONNECTIONS, threads=1, headers=headers)
                result.saturation_cpu = meter.stop()
            if bench.wants(2):
                bench.settle()
                meter = _TreeMeter(pids, authz).start()
                result.fixed = _load.h2load(
                    url,
                    seconds=seconds,
                    clients=FIXED_CLIENTS,
                    streams=FIXED_STREAMS,
                    rps_per_client=FIXED_RPS // FIXED_CLIENTS,
                    headers=headers,
                    log_file=_fresh(bench.workdir / f"h2load-{_slug(variant.name)}.log"),
                )
                result.fixed_cpu = meter.stop()
        finally:
            envoy.stop()
    finally:
        if backend is not None:
            backend.stop()
    return result


class _TreeMeter:
    """CPU of Envoy and of all authorization-server processes (summed as ``authz``)."""

    def __init__(self, pids: dict[str, int], authz: list[int]) -> None:
        self.meter = CpuMeter({**pids, **{f"authz{i}": pid for i, pid in enumerate(authz)}})

    def start(self) -> _TreeMeter:
        self.meter.start()
        return self

    def stop(self) -> dict[str, float]:
        used = self.meter.stop()
        out = {k: v for k, v in used.items() if not k.startswith("authz")}
        parts = [v for k, v in used.items() if k.startswith("authz")]
        if parts:
            out["authz"] = sum(parts)
        # Everything else the machine did meanwhile, load generator included (subtracted later).
        out["machine"] = self.meter.machine_s
        return out


def run(bench: Bench) -> None:
    issuer = _issuer(bench)
    measured: list[Measured] = []
    try:
        for variant in _variants(bench, issuer):
            print(f"bench:   {variant.name}", file=sys.stderr, flush=True)
            try:
                measured.append(_measure(bench, variant, issuer.token))
            except Exception as exc:
                bench.report.not_measured.append(f"Scenarios 1–2, {variant.name}: {str(exc).splitlines()[0]}")
                print(f"bench:   {variant.name} failed: {exc}", file=sys.stderr)
    finally:
        issuer.stop()
    from bench import _envoy_report  # it imports this module's constants and types

    if bench.wants(1):
        _envoy_report.saturation(bench, measured, issuer)
    if bench.wants(2):
        _envoy_report.fixed(bench, measured)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def _fresh(path: Path) -> Path:
    """``path``, removed if it exists: h2load appends to its log file."""
    path.unlink(missing_ok=True)
    return path
