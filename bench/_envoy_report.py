"""The report sections and targets of scenarios 1 and 2 (bench/scenario_envoy.py measures them)."""

from __future__ import annotations

from bench._context import Bench
from bench._report import cores, ms, rate
from bench.scenario_envoy import CONNECTIONS, FIXED_CLIENTS, FIXED_RPS, FIXED_STREAMS, Issuer, Measured


def _other(cpu: dict[str, float], loadgen_s: float) -> float:
    """CPU the machine spent on anything but the measured processes and the load generator."""
    return max(0.0, cpu.get("machine", 0.0) - loadgen_s - sum(v for k, v in cpu.items() if k != "machine"))


def _background(m: Measured, *, saturation: bool) -> float:
    """Other processes' CPU, in cores, while ``m``'s saturation (or fixed-rate) row was measured."""
    result, cpu = (m.saturation, m.saturation_cpu) if saturation else (m.fixed, m.fixed_cpu)
    if result is None or not result.seconds:
        return 0.0
    return _other(cpu, result.cpu_s) / result.seconds


def _by_name(measured: list[Measured], name: str) -> Measured | None:
    return next((m for m in measured if m.variant.name == name), None)


def saturation(bench: Bench, measured: list[Measured], issuer: Issuer) -> None:
    jwt = _by_name(measured, "jwt_authn")
    jwt_rps = jwt.saturation.rps if jwt and jwt.saturation else None
    section = bench.report.section(
        "1. Throughput at saturation through Envoy",
        f"wrk, 1 thread, {CONNECTIONS} keep-alive connections, HTTP/1.1, {bench.options.duration_s:.0f} s per row; "
        f"Envoy `--concurrency {bench.options.envoy_concurrency}`; the route answers with `direct_response`. "
        f"The same ES256 access token on every request (the decision and JWT caches are warm), issued by "
        f"{issuer.name}. "
        "CPU in cores (CPU s ÷ wall s); *CPU other* is what the rest of the machine used meanwhile (other "
        "people's work on the shared cores); *authz µs/req* is the authorization server's CPU time per request.",
        [
            *("scenario", "req/s", "× jwt_authn", "errors", "p50 ms", "p99 ms"),
            *("CPU wrk", "CPU Envoy", "CPU authz", "CPU other", "authz µs/req"),
        ],
    )
    for m in measured:
        s = m.saturation
        if s is None:
            continue
        us = m.authz_us_per_request()
        section.rows.append(
            [
                m.variant.name,
                rate(s.rps),
                f"{s.rps / jwt_rps:.2f}" if jwt_rps else "–",
                str(s.errors),
                ms(s.percentiles_s.get(50.0, float("nan"))),
                ms(s.percentiles_s.get(99.0, float("nan"))),
                cores(s.cpu_s, s.seconds),
                cores(m.saturation_cpu.get("envoy", 0.0), s.seconds),
                cores(m.saturation_cpu["authz"], s.seconds) if "authz" in m.saturation_cpu else "–",
                cores(_other(m.saturation_cpu, s.cpu_s), s.seconds),
                f"{us:.0f}" if us is not None else "–",
            ]
        )
    section.notes.append(
        "`jwt_authn` checks signature, `iss`, `aud` and expiry only; the sidecar also checks `typ`, "
        "`token_usage`, the route's scopes and the revocation set."
    )
    sidecars = [m for m in measured if m.variant.kind == "sidecar" and m.saturation]
    # gRPC against jwt_authn (no cache), as before; HTTP against jwt_authn + cache (issue 15's target).
    cached_jwt = _by_name(measured, "jwt_authn + cache")
    for transport, reference in (("grpc", jwt), ("http", cached_jwt)):
        mine = [m for m in sidecars if m.variant.transport == transport]
        if not mine or reference is None or reference.saturation is None:
            continue
        best = max(mine, key=lambda m: m.saturation.rps)  # type: ignore[union-attr]
        ratio = best.saturation.rps / reference.saturation.rps  # type: ignore[union-attr]
        bench.report.target(
            f"sidecar{' over HTTP' if transport == 'http' else ''} ÷ {reference.variant.name} throughput through Envoy",
            "≥ 0.25",
            f"{ratio:.2f} ({best.variant.name}: {rate(best.saturation.rps)} vs {rate(reference.saturation.rps)} req/s)",  # type: ignore[union-attr]
            ratio >= 0.25,
            max(_background(best, saturation=True), _background(reference, saturation=True)),
        )
    for m in sidecars:
        canned = next(
            (
                c
                for c in measured
                if c.variant.kind == "canned"
                and c.variant.processes == m.variant.processes
                and c.variant.transport == m.variant.transport
            ),
            None,
        )
        mine, floor = m.authz_us_per_request(), canned.authz_us_per_request() if canned else None
        floor_name = "the HTTP floor" if m.variant.transport == "http" else "canned grpcio"
        if mine and floor:
            bench.report.target(
                f"sidecar CPU per decision ÷ {floor_name} (×{m.variant.processes} processes)",
                "≤ 1.25×" if m.variant.transport == "grpc" else "–",
                f"{mine / floor:.2f}× ({mine:.0f} vs {floor:.0f} µs)",
                mine / floor <= 1.25 if m.variant.transport == "grpc" else None,
                max(_background(m, saturation=True), _background(canned, saturation=True)),  # type: ignore[arg-type]
            )
        if mine and m.variant.transport == "http":
            bench.report.target(
                f"sidecar CPU per cached decision over HTTP (×{m.variant.processes} processes)",
                "≤ 100 µs",
                f"{mine:.0f} µs",
                mine <= 100,
                _background(m, saturation=True),
            )
    if not sidecars:
        bench.report.target("sidecar ÷ jwt_authn throughput through Envoy", "≥ 0.25", "–", None)


def fixed(bench: Bench, measured: list[Measured]) -> None:
    section = bench.report.section(
        "2. Latency at a fixed 1,000 req/s through Envoy",
        f"h2load, HTTP/2, {FIXED_CLIENTS} connections × {FIXED_RPS // FIXED_CLIENTS} req/s (up to {FIXED_STREAMS} "
        "requests in flight each, so a slow answer does not delay the next request), "
        f"{bench.options.duration_s:.0f} s per row, latency of every request from h2load's per-request log.",
        [
            *("scenario", "req/s", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "added p99 ms"),
            *("CPU h2load", "CPU Envoy", "CPU authz", "CPU other"),
        ],
    )
    base = _by_name(measured, "no auth")
    base_p99 = base.fixed.percentiles_s.get(99) if base and base.fixed else None
    panel = bench.report.latencies.setdefault(f"Scenario 2: latency through Envoy at {FIXED_RPS:,} req/s", {})
    for m in measured:
        f = m.fixed
        if f is None:
            continue
        p = f.percentiles_s
        added = p[99] - base_p99 if base_p99 is not None and 99 in p else float("nan")
        section.rows.append(
            [
                m.variant.name,
                rate(f.rps),
                str(f.errors),
                ms(p.get(50, float("nan"))),
                ms(p.get(90, float("nan"))),
                ms(p.get(99, float("nan"))),
                ms(p.get(99.9, float("nan"))),
                ms(f.latencies_s[-1]) if f.latencies_s else "–",
                ms(added),
                cores(f.cpu_s, f.seconds),
                cores(m.fixed_cpu.get("envoy", 0.0), f.seconds),
                cores(m.fixed_cpu["authz"], f.seconds) if "authz" in m.fixed_cpu else "–",
                cores(_other(m.fixed_cpu, f.cpu_s), f.seconds),
            ]
        )
        panel[m.variant.name] = f.latencies_s
    floors = [m for m in measured if m.variant.kind == "canned" and m.fixed and 99 in m.fixed.percentiles_s]
    if base_p99 is not None:
        for m in floors:
            added = m.fixed.percentiles_s[99] - base_p99  # type: ignore[union-attr]
            label = "HTTP" if m.variant.transport == "http" else "grpcio"
            section.notes.append(
                f"The do-nothing floor ({m.variant.name}) itself adds {added * 1000:.2f} ms at p99: no {label} "
                "ext_authz server on this machine can add less."
            )
    sidecars = [m for m in measured if m.variant.kind == "sidecar" and m.fixed and 99 in m.fixed.percentiles_s]
    for m in sidecars:
        added = m.fixed.percentiles_s[99] - base_p99 if base_p99 is not None else float("nan")  # type: ignore[union-attr]
        what = f"added p99 at 1,000 req/s, {m.variant.name} over no auth"
        noise = max(_background(m, saturation=False), _background(base, saturation=False)) if base else None
        measured_text = f"{added * 1000:.2f} ms"
        if base_p99 is not None:
            # Against both floors: what the transport costs, and what the other transport would.
            for floor in (c for c in floors if c.variant.processes == m.variant.processes):
                floor_added = floor.fixed.percentiles_s[99] - base_p99  # type: ignore[union-attr]
                label = "HTTP" if floor.variant.transport == "http" else "grpcio"
                measured_text += f"; the do-nothing {label} floor adds {floor_added * 1000:.2f} ms"
        bench.report.target(what, "≤ 1 ms", measured_text, added <= 0.001, noise)
    if not sidecars:
        bench.report.target("added p99 at 1,000 req/s, sidecar over no auth", "≤ 1 ms", "–", None)
