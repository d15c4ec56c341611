"""Scenario 3: the ext_authz ``Check`` RPC straight at the sidecar (no Envoy), HTTP/2 with gRPC
framing from h2load for fixed requests, and a Python gRPC client for unique tokens.

Cases: a cached valid token (the same token on every call), a valid token missing the route's
scope (a deny from the cache), a token whose signature does not match (a deny that needs a
signature check every time), and unique valid tokens (every call verifies a signature).

The HTTP transport (Envoy's ``http_service`` protocol) is measured beside it: the do-nothing HTTP
floor and the sidecar answering a cached valid token, from h2load over HTTP/1.1 keep-alive.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import _load, _profile, _stack, _tokens
from bench._context import Bench
from bench._report import Section, cores, ms, rate
from bench._system import CpuMeter

CLIENTS = 32  # HTTP/2 connections: many, so SO_REUSEPORT spreads them evenly over worker processes
STREAMS = 8  # concurrent calls per connection (256 in flight, as before)
PY_CLIENTS = 2  # Python client processes for unique tokens
METHOD = "/envoy.service.auth.v3.Authorization/Check"
HTTP_CLIENTS = 32  # HTTP/1.1 keep-alive connections, one request in flight each (as Envoy sends them)


@dataclass
class Case:
    name: str
    token: str | None
    scope: str
    allowed: bool


def _cases(bench: Bench) -> list[Case]:
    token = bench.key.access_token()
    return [
        Case("allow, cached token", token, _tokens.SCOPE, True),
        Case("deny, missing scope (403)", token, "bench:write", False),
        Case("deny, bad signature (401)", _tokens.tamper(token), _tokens.SCOPE, False),
    ]


def _verify_answer(address: str, case: Case) -> None:
    answer = _stack.check(address, _stack.check_request(case.token, scope=case.scope))
    if (answer.status.code == 0) != case.allowed:
        raise RuntimeError(
            f"{case.name}: the sidecar answered code {answer.status.code}; expected allowed={case.allowed}"
        )


def run(bench: Bench) -> None:
    if not _stack.sidecar_available():
        bench.report.not_measured.append("Scenario 3: `sidecar/cli.py` is not there yet.")
        bench.report.target("Check/s straight at the sidecar, cached token", "≥ 10,000/s", "–", None)
        return
    section = bench.report.section(
        "3. Check RPC straight at the sidecar",
        f"h2load over HTTP/2 with a gRPC-framed `CheckRequest` body ({CLIENTS} connections × {STREAMS} streams), "
        f"{bench.options.duration_s:.0f} s per row; unique tokens need a body per call, so that row uses "
        f"{PY_CLIENTS} Python grpc.aio client processes instead (far more CPU per call than h2load). "
        "h2load counts HTTP 200 (a gRPC answer of either kind): each case's answer is checked once beforehand.",
        [
            *("case", "workers", "Check/s", "errors", "p50 ms", "p99 ms"),
            *("CPU client", "CPU sidecar", "CPU other", "sidecar µs/Check"),
        ],
    )
    best_cached, best_noise, best_floor = 0.0, 0.0, 0.0
    for workers in bench.options.sidecar_workers:
        canned = bench.start_canned(workers)
        try:
            print(f"bench:   canned ×{workers}", file=sys.stderr, flush=True)
            floor = Case("floor: canned-OK grpcio server", None, _tokens.SCOPE, True)
            result, cpu = _fixed_body(bench, canned, floor)
            _row(section, f"{floor.name} ({bench.options.canned_mode})", workers, result, cpu)
            floor_rps = result.rps
        finally:
            canned.stop()
        canned = bench.start_canned(workers, mode="http")
        try:
            print(f"bench:   canned http ×{workers}", file=sys.stderr, flush=True)
            floor = Case("floor: do-nothing HTTP server (asyncio + httptools)", None, _tokens.SCOPE, True)
            result, cpu = _http_fixed(bench, canned.pids, canned.address, floor)
            _row(section, floor.name, workers, result, cpu)
        finally:
            canned.stop()
        feed = _stack.start_fake_feed(bench.workdir, bench.key.jwks_json(), name=f"feed-s3-{workers}")
        try:
            sidecar, _ = _stack.start_sidecar(
                bench.workdir, token_url=feed.address, workers=workers, name=f"sidecar-s3-{workers}"
            )
            try:
                for case in _cases(bench):
                    print(f"bench:   sidecar ×{workers}: {case.name}", file=sys.stderr, flush=True)
                    _verify_answer(sidecar.address, case)
                    result, cpu = _fixed_body(bench, sidecar, case)
                    _row(section, case.name, workers, result, cpu)
                    if case.allowed and result.rps > best_cached:
                        best_cached, best_floor = result.rps, floor_rps
                        best_noise = result.other_cpu_s / result.seconds if result.seconds else 0.0
                        if bench.options.profile:
                            _profile_case(bench, section, sidecar, case, workers)
                case = _cases(bench)[0]
                print(f"bench:   sidecar ×{workers}: HTTP transport, {case.name}", file=sys.stderr, flush=True)
                result, cpu = _http_fixed(bench, sidecar.pids, sidecar.extra["http"], case)
                _row(section, f"HTTP transport: {case.name}", workers, result, cpu)
                print(f"bench:   sidecar ×{workers}: unique tokens", file=sys.stderr, flush=True)
                result, cpu = _unique_tokens(bench, sidecar)
                _row(section, "allow, unique tokens (uncached)", workers, result, cpu)
            finally:
                sidecar.stop()
        finally:
            feed.stop()
    bench.report.target(
        "Check/s straight at the sidecar, cached token",
        "≥ 10,000/s",
        f"{rate(best_cached)}/s ({best_cached / best_floor:.0%} of the do-nothing grpcio floor's "
        f"{rate(best_floor)}/s with as many processes)"
        if best_floor
        else f"{rate(best_cached)}/s",
        best_cached >= 10_000,
        best_noise,
    )


def _row(section: object, name: str, workers: int, result: _load.LoadResult, cpu: float) -> None:
    p = result.percentiles_s
    section.rows.append(  # type: ignore[attr-defined]
        [
            name,
            str(workers),
            rate(result.rps),
            str(result.errors),
            ms(p.get(50, float("nan"))),
            ms(p.get(99, float("nan"))),
            cores(result.cpu_s, result.seconds),
            cores(cpu, result.seconds),
            cores(result.other_cpu_s, result.seconds),
            f"{cpu / result.requests * 1e6:.0f}" if result.requests else "–",
        ]
    )


def _fixed_body(
    bench: Bench, sidecar: _stack.Server, case: Case, *, settle: bool = True
) -> tuple[_load.LoadResult, float]:
    body = bench.workdir / "check-body.bin"
    body.write_bytes(_load.grpc_frame(_stack.check_request(case.token, scope=case.scope).SerializeToString()))
    if settle:
        bench.settle()
    meter = CpuMeter({f"p{i}": pid for i, pid in enumerate(sidecar.pids)}).start()
    result = _load.h2load(
        f"http://{sidecar.address}{METHOD}",
        seconds=bench.options.duration_s,
        clients=CLIENTS,
        streams=STREAMS,
        headers=_load.GRPC_HEADERS,
        body=body,
        log_file=_fresh_log(bench, case.name),
    )
    cpu = sum(meter.stop().values())
    result.other_cpu_s = max(0.0, meter.machine_s - cpu - result.cpu_s)
    return result, cpu


def _http_fixed(bench: Bench, pids: list[int], address: str, case: Case) -> tuple[_load.LoadResult, float]:
    """``case`` as Envoy's http_service sends it (method, path, Host, the token header and the
    route's requirement header), over HTTP/1.1 keep-alive."""
    headers = {"x-native-iam-requirement": json.dumps({"scopes": case.scope})}
    if case.token is not None:
        headers["authorization"] = f"Bearer {case.token}"
    bench.settle()
    meter = CpuMeter({f"p{i}": pid for i, pid in enumerate(pids)}).start()
    result = _load.h2load(
        f"http://{address}/orders/42",
        seconds=bench.options.duration_s,
        clients=HTTP_CLIENTS,
        streams=1,
        headers=headers,
        h1=True,
        log_file=_fresh_log(bench, "http-" + case.name),
    )
    cpu = sum(meter.stop().values())
    result.other_cpu_s = max(0.0, meter.machine_s - cpu - result.cpu_s)
    if case.allowed and result.errors:
        raise RuntimeError(f"HTTP {case.name}: {result.errors} of {result.requests} requests were not answered 200")
    return result, cpu


def _fresh_log(bench: Bench, name: str) -> Path:
    """A per-case h2load log (h2load appends to an existing file)."""
    path = bench.workdir / ("h2load-s3-" + "".join(c if c.isalnum() else "-" for c in name) + ".log")
    path.unlink(missing_ok=True)
    return path


def _profile_case(bench: Bench, section: Section, sidecar: _stack.Server, case: Case, workers: int) -> None:
    """A second pass of the same load with py-spy sampling the sidecar (kept out of the figures)."""
    if not _profile.available():
        section.notes.append("py-spy is not installed (pip install py-spy): no profile.")
        return
    raw = bench.workdir / f"profile-s3-{workers}.txt"
    bench.settle()
    sampler = _profile.start(sidecar.pids[0], bench.options.duration_s, raw)
    _fixed_body(bench, sidecar, case, settle=False)
    sampler.wait(60)
    if raw.exists():
        title = f"Profile: sidecar ×{workers}, {case.name}, under the same h2load load"
        section.extra += _profile.markdown(title, _profile.summarize(raw))


def _unique_tokens(bench: Bench, sidecar: _stack.Server) -> tuple[_load.LoadResult, float]:
    seconds = bench.options.duration_s
    # Enough tokens that the clients do not run out at a few thousand Checks/s.
    per_client = int(min(4000 * seconds, 40_000) / PY_CLIENTS) if not bench.options.smoke else 1000
    files = []
    for i in range(PY_CLIENTS):
        path = bench.workdir / f"tokens-{i}.txt"
        path.write_text("\n".join(bench.key.access_token() for _ in range(per_client)))
        files.append(path)
    argvs = [
        [
            sys.executable,
            "-m",
            "bench.check_client",
            "--target",
            sidecar.address,
            "--tokens",
            str(f),
            "--seconds",
            str(seconds),
        ]
        for f in files
    ]
    bench.settle()
    meter = CpuMeter({"sidecar": sidecar.pids[0]}).start()
    outputs = _load.run_measured_parallel(argvs, timeout=seconds + 60)
    cpu = meter.stop()["sidecar"]
    done = errors = allowed = 0
    wall = 0.0
    client_cpu = 0.0
    for output, cpu_s, code in outputs:
        if code != 0:
            raise RuntimeError(f"check_client failed ({code}):\n{output}")
        stats = json.loads(output.strip().splitlines()[-1])
        done += int(stats["done"])
        allowed += int(stats["allowed"])
        errors += int(stats["errors"])
        wall = max(wall, float(stats["seconds"]))
        client_cpu += cpu_s
    if allowed != done:
        raise RuntimeError(f"unique tokens: {done - allowed} of {done} valid tokens were denied")
    result = _load.LoadResult(requests=done, seconds=wall, rps=done / wall, errors=errors, cpu_s=client_cpu)
    result.other_cpu_s = max(0.0, meter.machine_s - cpu - client_cpu)
    return result, cpu
