"""Scenario 5: the token service's own throughput — password, refresh and client_credentials grants
and central CheckAccess over gRPC and over HTTP, on SQLite and on PostgreSQL (with ``--redis``: each
also with SYSTEM_CACHE_URL, side by side, and the ratios in the notes) — against the argon2id ceiling
(cores ÷ the time of one verify with the service's parameters, measured in the same run).

Load: h2load with a fixed body (gRPC-framed protobuf, or an urlencoded form), so the load
generator costs little per request; each body's answer is checked once beforehand, because
h2load only sees HTTP statuses.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from bench import _load, _profile, _token_service
from bench._context import Bench
from bench._report import Section, cores, rate
from bench._system import CpuMeter
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc

CLIENTS = 4
STREAMS = 16
OAuth = "/native_iam.oauth.v1.OAuth/"


@dataclass
class Argon2Ceiling:
    parameters: str
    verify_s: float  # CPU time of one verify (thread CPU time: robust to other load on the cores)
    wall_s: float  # wall time of one verify in this run, for reference
    cores: int
    #: Verifies/s with one thread per core at once: what the cores really deliver when they share
    #: caches and memory bandwidth (or are SMT siblings), for reference beside the target's ceiling.
    parallel_per_second: float = 0.0

    @property
    def per_second(self) -> float:
        return self.cores / self.verify_s


def argon2_ceiling(samples: int) -> Argon2Ceiling:
    """Time one argon2id verify with the token service's default parameters, single-threaded."""
    from token_service.passwords import Passwords
    from token_service.settings import Settings

    d = Settings()
    passwords = Passwords(d.argon2_memory_kib, d.argon2_time_cost, d.argon2_parallelism, workers=1)
    try:
        stored = passwords.hash("correct horse battery staple")
        hasher = passwords.hasher
        hasher.verify(stored, "correct horse battery staple")  # warm up
        started, cpu_started = time.perf_counter(), time.thread_time()
        for _ in range(samples):
            hasher.verify(stored, "correct horse battery staple")
        verify_s = (time.thread_time() - cpu_started) / samples
        wall_s = (time.perf_counter() - started) / samples
        cores = os.cpu_count() or 1
        parallel = _parallel_rate(hasher, stored, cores, samples)
        return Argon2Ceiling(passwords.parameters, verify_s, wall_s, cores, parallel)
    finally:
        passwords.close()


def _parallel_rate(hasher: object, stored: str, threads: int, samples: int) -> float:
    """Verifies/s with ``threads`` threads verifying at once (argon2-cffi releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def verify_many(_: int) -> None:
        for _ in range(samples):
            hasher.verify(stored, "correct horse battery staple")  # type: ignore[attr-defined]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(verify_many, range(threads)))
    return threads * samples / (time.perf_counter() - started)


def _wait_for_grant(service: _token_service.TokenService) -> oauth_pb2.CreateTokenWithPasswordResponse:
    """The bootstrap admin exists a moment after SERVING: retry the password grant until OK."""
    request = oauth_pb2.CreateTokenWithPasswordRequest(identity=_token_service.IDENTITY, password=service.password)
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(service.grpc) as channel:
        stub = oauth_pb2_grpc.OAuthStub(channel)
        while True:
            try:
                answer = stub.CreateTokenWithPassword(request, timeout=30)
                outcome = f"status {answer.status}"
                if answer.status == answer.OK:
                    return answer
            except grpc.RpcError as exc:  # a loaded machine: slow, not broken
                outcome = f"{exc.code().name}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"password grant for the bootstrap admin: {outcome}")
            time.sleep(0.2)


def _grpc_cases(
    service: _token_service.TokenService, tokens: oauth_pb2.CreateTokenWithPasswordResponse
) -> list[tuple[str, str, bytes, Callable[[], str | None]]]:
    """(name, method, body, check) for each gRPC case; check() returns why the body is unusable."""
    password = oauth_pb2.CreateTokenWithPasswordRequest(identity=_token_service.IDENTITY, password=service.password)
    refresh = oauth_pb2.RefreshTokenRequest(refresh_token=tokens.refresh_token)
    check = oauth_pb2.CheckAccessRequest(access_token=tokens.access_token, scopes=[_token_service.SCOPE])

    def call(method: str, request: object, response_cls: type) -> object:
        with grpc.insecure_channel(service.grpc) as channel:
            rpc = channel.unary_unary(
                OAuth + method,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_cls.FromString,
            )
            return rpc(request, timeout=30)

    def password_ok() -> str | None:
        answer = call("CreateTokenWithPassword", password, oauth_pb2.CreateTokenWithPasswordResponse)
        return None if answer.status == 1 else f"status {answer.status}"  # type: ignore[attr-defined]

    def refresh_ok() -> str | None:
        # Twice: with rotation on, the second use of one refresh token is refused, and a fixed
        # body cannot measure it (it would measure the refusal).
        for _ in range(2):
            answer = call("RefreshToken", refresh, oauth_pb2.RefreshTokenResponse)
            if answer.status != 1:  # type: ignore[attr-defined]
                return f"status {answer.status} (rotation on for the gRPC client?)"  # type: ignore[attr-defined]
        return None

    def check_ok() -> str | None:
        answer = call("CheckAccess", check, oauth_pb2.CheckAccessResponse)
        return None if answer.status == 1 else f"status {answer.status}"  # type: ignore[attr-defined]

    return [
        ("password grant", "CreateTokenWithPassword", password.SerializeToString(), password_ok),
        ("refresh grant", "RefreshToken", refresh.SerializeToString(), refresh_ok),
        ("CheckAccess (central)", "CheckAccess", check.SerializeToString(), check_ok),
    ]


def _measure(
    bench: Bench, pids: list[int], url: str, body: bytes, headers: dict[str, str], *, settle: bool = True
) -> tuple[_load.LoadResult, float]:
    path = bench.workdir / "ts-body.bin"
    path.write_bytes(body)
    if settle:
        bench.settle()
    meter = CpuMeter({f"p{i}": pid for i, pid in enumerate(pids)}).start()
    result = _load.h2load(
        url,
        seconds=bench.options.duration_s,
        clients=CLIENTS,
        streams=STREAMS,
        headers=headers,
        body=path,
        h1=not headers.get("content-type", "").startswith("application/grpc"),
        warm_up_s=0 if bench.options.smoke else 1,
    )
    cpu = sum(meter.stop().values())
    result.other_cpu_s = max(0.0, meter.machine_s - cpu - result.cpu_s)
    return result, cpu


def _profile_case(
    bench: Bench, section: Section, service: _token_service.TokenService, url: str, body: bytes, what: str
) -> None:
    """A second pass of the same load with py-spy sampling the token service (kept out of the figures)."""
    if not _profile.available():
        return
    raw = bench.workdir / f"profile-s5-{len(section.extra)}.txt"
    bench.settle()
    sampler = _profile.start(service.pid, bench.options.duration_s + 1, raw)
    _measure(bench, [service.pid], url, body, _load.GRPC_HEADERS, settle=False)
    sampler.wait(60)
    if raw.exists():
        section.extra += _profile.markdown(f"Profile: token service, {what}", _profile.summarize(raw))


def _http_cases(
    service: _token_service.TokenService, refresh_token_for: Callable[[dict[str, str]], str], sa_token: str
) -> list[tuple[str, bytes, dict[str, str], Callable[[], str | None]]]:
    """(name, form body, headers, check) for the token endpoint, as a confidential client (and,
    for the last row, as a workload presenting its service-account token ``sa_token``)."""
    admin = _token_service.Admin(service)
    try:
        secret = admin.create_client("bench-client")
        admin.create_workload_client()
    finally:
        admin.close()
    basic = base64.b64encode(f"bench-client:{secret}".encode()).decode()
    headers = {"content-type": "application/x-www-form-urlencoded", "authorization": f"Basic {basic}"}
    password = urllib.parse.urlencode(
        {"grant_type": "password", "username": _token_service.IDENTITY, "password": service.password}
    )
    refresh = urllib.parse.urlencode(
        {"grant_type": "refresh_token", "refresh_token": refresh_token_for(headers | {"body": password})}
    )

    def usable(body: str, times: int, sent: dict[str, str] = headers) -> Callable[[], str | None]:
        def check() -> str | None:
            for _ in range(times):
                status, answer = _post(service, body, sent)
                if status != 200 or "access_token" not in answer:
                    return f"HTTP {status}: {answer[:200]}"
            return None

        return check

    # The workload path of issue 13: a secret and no password, so no argon2 (compare with refresh).
    client_credentials = urllib.parse.urlencode({"grant_type": "client_credentials"})
    # The same grant with no stored secret at all: the pod's projected token, verified (RS256)
    # against the cluster's keys on every grant (reusable, as the kubelet's tokens are).
    assertion = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": sa_token,
        }
    )
    form = {"content-type": "application/x-www-form-urlencoded"}
    return [
        ("password grant", password.encode(), headers, usable(password, 1)),
        ("refresh grant", refresh.encode(), headers, usable(refresh, 2)),
        ("client_credentials grant", client_credentials.encode(), headers, usable(client_credentials, 1)),
        ("client_credentials, SA assertion", assertion.encode(), form, usable(assertion, 2, form)),
    ]


def _post(service: _token_service.TokenService, body: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://{service.http}/oauth2/token", data=body.encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")


def _http_refresh_token(service: _token_service.TokenService) -> Callable[[dict[str, str]], str]:
    def get(spec: dict[str, str]) -> str:
        body = spec.pop("body")
        status, answer = _post(service, body, spec)
        if status != 200:
            raise RuntimeError(f"HTTP password grant: {status} {answer[:200]}")
        return str(json.loads(answer)["refresh_token"])

    return get


def run(bench: Bench) -> None:
    from bench import _stack

    if not _stack.token_service_available():
        bench.report.not_measured.append("Scenario 5: `token_service/cli/main.py` is not there yet.")
        return
    ceiling = argon2_ceiling(3 if bench.options.smoke else 20)
    section = bench.report.section(
        "5. Token service: grants and central CheckAccess",
        f"h2load with a fixed body ({CLIENTS} connections × {STREAMS} streams; HTTP/2 gRPC framing, or HTTP/1.1 "
        f"urlencoded forms), {bench.options.duration_s:.0f} s per row; the token service with "
        f"`NATIVE_IAM_WORKERS` processes (*workers*) and otherwise default settings ({ceiling.parameters}); "
        "*CPU service* includes PostgreSQL's processes on PostgreSQL and Redis's on *+redis* rows (`--redis`). "
        f"argon2id ceiling: {ceiling.cores} cores ÷ {ceiling.verify_s * 1000:.1f} ms of CPU per verify "
        f"= **{ceiling.per_second:.0f} verifies/s** (measured in this run, one thread; its wall time was "
        f"{ceiling.wall_s * 1000:.1f} ms; {ceiling.cores} threads verifying at once reached "
        f"{ceiling.parallel_per_second:.0f}/s). With other work on the cores the service cannot reach the "
        "ceiling's rate, so *argon2 share of CPU* also shows the verify's CPU ÷ the service's CPU per grant: "
        "100% means the grant costs nothing beyond its verify.",
        [
            "db",
            "workers",
            "transport",
            "case",
            "req/s",
            "errors",
            "% of argon2 ceiling",
            "argon2 share of CPU",
            "CPU h2load",
            "CPU service",
            "CPU other",
            "service µs/req",
        ],
    )
    figures: dict[tuple[str, str], tuple[float, float]] = {}  # rate, other processes' cores
    # The smoke run proves the path once (scenario 4's smoke run covers PostgreSQL).
    floors = {workers: _floor(bench, section, workers) for workers in bench.options.token_service_workers}
    for db in ("sqlite",) if bench.options.smoke else ("sqlite", "postgresql"):
        for workers in bench.options.token_service_workers:
            _run_service(bench, section, figures, ceiling, db, workers)
            if bench.options.redis:  # the same configuration with SYSTEM_CACHE_URL, right after
                _run_service(bench, section, figures, ceiling, db, workers, redis=True)
    if bench.options.redis:
        _redis_ratios(section, figures)
    for (where, case), (value, _) in sorted(figures.items()):
        workers = int(where.rsplit("×", 1)[1])
        if "CheckAccess" in case and floors.get(workers):
            section.notes.append(
                f"{where} {case}: {value / floors[workers]:.0%} of the do-nothing grpc.aio floor "
                f"with as many processes ({rate(floors[workers])}/s)"
            )
    _targets(bench, figures, ceiling, floors)


def _floor(bench: Bench, section: Section, workers: int) -> float | None:
    """The ceiling of any grpc.aio server here: a do-nothing one (bench.canned_authz, ``workers``
    processes) answering a unary call with a body of a CheckAccess's size, measured like the rows."""
    from bench._stack import check_request

    print(f"bench:   floor: do-nothing grpc.aio server ×{workers}", file=sys.stderr, flush=True)
    server = bench.start_canned(workers, mode="aio")
    try:
        body = _load.grpc_frame(check_request("x" * 420).SerializeToString())
        url = f"http://{server.address}/envoy.service.auth.v3.Authorization/Check"
        result, cpu = _measure(bench, server.pids, url, body, _load.GRPC_HEADERS)
    finally:
        server.stop()
    section.rows.append(
        [
            "–",
            str(workers),
            "gRPC",
            "floor: do-nothing grpc.aio server",
            rate(result.rps),
            str(result.errors),
            "–",
            "–",
            cores(result.cpu_s, result.seconds),
            cores(cpu, result.seconds),
            cores(result.other_cpu_s, result.seconds),
            f"{cpu / result.requests * 1e6:.0f}" if result.requests else "–",
        ]
    )
    return result.rps if result.requests and not result.errors else None


def _run_service(
    bench: Bench,
    section: Section,
    figures: dict[tuple[str, str], tuple[float, float]],
    ceiling: Argon2Ceiling,
    db: str,
    workers: int,
    *,
    redis: bool = False,
) -> None:
    """Every case against one token service (``workers`` processes) on a fresh ``db`` (with
    ``redis``: and SYSTEM_CACHE_URL; the rows' *db* says ``+redis``)."""
    service = bench.start_token_service(5, db, workers, redis=redis)
    if service is None:
        return
    pids = [service.pid, *(bench.postgres_pids() if db == "postgresql" else [])]
    if redis:
        pids += bench.redis_pids()
        db = f"{db}+redis"
    try:
        tokens = _wait_for_grant(service)
        for name, method, body, usable in _grpc_cases(service, tokens):
            why = usable()
            if why:
                bench.report.not_measured.append(f"Scenario 5, gRPC {name} on {db} ×{workers}: {why}")
                continue
            print(f"bench:     gRPC {name}", file=sys.stderr, flush=True)
            target = f"http://{service.grpc}{OAuth}{method}"
            result, cpu = _measure(bench, pids, target, _load.grpc_frame(body), _load.GRPC_HEADERS)
            _row(section, db, workers, "gRPC", name, result, cpu, ceiling)
            figures[(f"{db} ×{workers}", f"gRPC {name}")] = (result.rps, result.other_cpu_s / result.seconds)
            if bench.options.profile and db == "sqlite" and workers == 1 and "password" not in name:
                _profile_case(bench, section, service, target, _load.grpc_frame(body), f"gRPC {name} on {db}")
        cases = _http_cases(service, _http_refresh_token(service), bench.cluster().token())
        for name, form, headers, http_usable in cases:
            why = http_usable()
            if why:
                bench.report.not_measured.append(f"Scenario 5, HTTP {name} on {db} ×{workers}: {why}")
                continue
            print(f"bench:     HTTP {name}", file=sys.stderr, flush=True)
            result, cpu = _measure(bench, pids, f"http://{service.http}/oauth2/token", form, headers)
            _row(section, db, workers, "HTTP", name, result, cpu, ceiling)
            figures[(f"{db} ×{workers}", f"HTTP {name}")] = (result.rps, result.other_cpu_s / result.seconds)
    finally:
        service.stop()


def _redis_ratios(section: Section, figures: dict[tuple[str, str], tuple[float, float]]) -> None:
    """One note per case: its rate with Redis ÷ without, same database and workers."""
    for (where, case), (with_redis, _) in sorted(figures.items()):
        db, _, workers = where.partition(" ")
        if not db.endswith("+redis"):
            continue
        without = figures.get((f"{db.removesuffix('+redis')} {workers}", case))
        if without and without[0]:
            section.notes.append(
                f"{where} {case}: ×{with_redis / without[0]:.2f} of the same without Redis "
                f"({rate(with_redis)}/s against {rate(without[0])}/s)"
            )


def _row(
    section: Section,
    db: str,
    workers: int,
    transport: str,
    name: str,
    result: _load.LoadResult,
    cpu: float,
    ceiling: Argon2Ceiling,
) -> None:
    password = "password" in name
    share = f"{result.rps / ceiling.per_second:.0%}" if password else "–"
    per_request_s = cpu / result.requests if result.requests else 0.0
    efficiency = f"{ceiling.verify_s / per_request_s:.0%}" if password and per_request_s else "–"
    section.rows.append(
        [
            db,
            str(workers),
            transport,
            name,
            rate(result.rps),
            str(result.errors),
            share,
            efficiency,
            cores(result.cpu_s, result.seconds),
            cores(cpu, result.seconds),
            cores(result.other_cpu_s, result.seconds),
            f"{cpu / result.requests * 1e6:.0f}" if result.requests else "–",
        ]
    )


def _targets(
    bench: Bench,
    figures: dict[tuple[str, str], tuple[float, float]],
    ceiling: Argon2Ceiling,
    floors: dict[int, float | None],
) -> None:
    def best(case: str) -> tuple[float, str, float] | None:
        found = [(v, f"{db} {k}", noise) for (db, k), (v, noise) in figures.items() if case in k]
        return max(found) if found else None

    for case, what, target, goal in (
        ("refresh grant", "refresh grants/s (best of HTTP/gRPC, SQLite/PostgreSQL)", "≥ 2,000/s", 2000.0),
        ("CheckAccess", "central CheckAccess/s", "≥ 5,500/s", 5500.0),
    ):
        top = best(case)
        text = f"{rate(top[0])}/s ({top[1]})" if top else "–"
        floor = floors.get(int(top[1].split("×", 1)[1].split()[0])) if top and "CheckAccess" in case else None
        if top and floor:
            text += f", {top[0] / floor:.0%} of the do-nothing grpc.aio floor ({rate(floor)}/s)"
        bench.report.target(
            what,
            target,
            text,
            top[0] >= goal if top else None,
            top[2] if top else None,
        )
    top = best("password grant")
    bench.report.target(
        "password grant ÷ argon2id ceiling",
        "≥ 90%",
        _password_text(top, ceiling),
        top[0] / ceiling.per_second >= 0.9 if top else None,
        top[2] if top else None,
    )


def _password_text(top: tuple[float, str, float] | None, ceiling: Argon2Ceiling) -> str:
    if not top:
        return "–"
    text = f"{top[0] / ceiling.per_second:.0%} ({rate(top[0])}/s of {ceiling.per_second:.0f}/s, {top[1]})"
    if ceiling.parallel_per_second:
        text += (
            f"; {top[0] / ceiling.parallel_per_second:.0%} of the {ceiling.parallel_per_second:.0f}/s that "
            f"{ceiling.cores} threads verifying at once reached"
        )
    return text


__all__ = ["argon2_ceiling", "run"]
