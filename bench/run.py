"""Run the native-iam-oauth benchmarks and write bench/RESULTS.md and bench/latency.png.

    ./dev bench                       # every scenario, default durations
    ./dev bench --scenarios 1,2 -d 10 # throughput and fixed-rate latency, 10 s per measurement
    ./dev bench --smoke               # a few seconds per scenario: the harness still works

Scenarios (see bench/README in RESULTS.md): 1 throughput through Envoy, 2 latency at a fixed
1,000 req/s, 3 Check straight at the sidecar, 4 revocation propagation, 5 token service grants
and CheckAccess, 6 sidecar memory with a large revocation set.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _report, _system, _tokens  # noqa: E402
from bench._context import Bench, Options  # noqa: E402
from native_iam._procs import envoy_binary  # noqa: E402

ALL = (1, 2, 3, 4, 5, 6)


def _scenarios(text: str) -> tuple[int, ...]:
    chosen = tuple(sorted({int(part) for part in text.replace(" ", "").split(",") if part}))
    if not chosen or any(s not in ALL for s in chosen):
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {ALL}")
    return chosen


def _workers(text: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in text.split(",") if part)
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("expected positive integers, comma-separated")
    return values


def _stack_defaults() -> tuple[str, int]:
    from bench._stack import sidecar_server_defaults

    return sidecar_server_defaults()


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-s", "--scenarios", type=_scenarios, default=ALL, help="e.g. 1,2,3 (default: all)")
    parser.add_argument("-d", "--duration", type=float, default=8.0, help="seconds per measurement (default 8)")
    parser.add_argument("--smoke", action="store_true", help="1 s per measurement, small sizes: checks the harness")
    parser.add_argument("--envoy-concurrency", type=int, default=2, help="Envoy worker threads (default 2)")
    parser.add_argument(
        "--sidecar-workers", type=_workers, default=(1, 2), help="sidecar process counts to compare (default 1,2)"
    )
    parser.add_argument(
        "--canned-mode",
        choices=("aio", "sync"),
        default=None,
        help="grpcio server kind of the canned floor (default: the sidecar's default kind)",
    )
    parser.add_argument(
        "--token-service-workers",
        type=_workers,
        default=(1, 2),
        help="scenario 5: NATIVE_IAM_WORKERS values to compare (default 1,2)",
    )
    parser.add_argument("--revocations", type=int, default=200, help="scenario 4: revocations timed (default 200)")
    parser.add_argument("--subscribers", type=int, default=1000, help="scenario 4: simulated feed subscribers")
    parser.add_argument("--revoked-jti", type=int, default=1_000_000, help="scenario 6: size of the revocation set")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md", help="report path")
    parser.add_argument(
        "--profile", action="store_true", help="also sample the servers with py-spy under load (separate pass)"
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="scenario 5: also run each configuration with SYSTEM_CACHE_URL (a redis-server of its own), side by side",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = parser.parse_args(argv)
    options = Options(
        scenarios=args.scenarios,
        duration_s=args.duration,
        smoke=args.smoke,
        envoy_concurrency=args.envoy_concurrency,
        canned_mode=args.canned_mode or _stack_defaults()[0],
        canned_threads=_stack_defaults()[1],
        sidecar_workers=args.sidecar_workers,
        token_service_workers=args.token_service_workers,
        revocations=args.revocations,
        subscribers=args.subscribers,
        revoked_jti=args.revoked_jti,
        out=args.out,
        keep=args.keep,
        profile=args.profile,
        redis=args.redis,
    )
    if args.smoke:
        # Seconds, not minutes: proves every scenario still runs, measures nothing worth quoting.
        options = dataclasses.replace(
            options,
            duration_s=1.0,
            sidecar_workers=args.sidecar_workers[:1],
            token_service_workers=args.token_service_workers[:1],
            revocations=5,
            subscribers=20,
            revoked_jti=20_000,
        )
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    from bench import scenario_check, scenario_envoy, scenario_memory, scenario_revocation, scenario_token_service

    runners = {
        1: scenario_envoy.run,  # runs 1 and 2 together (same servers)
        2: scenario_envoy.run,
        3: scenario_check.run,
        4: scenario_revocation.run,
        5: scenario_token_service.run,
        6: scenario_memory.run,
    }
    command = "python bench/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    machine = _system.describe_machine(envoy_binary())
    report = _report.Report(machine=machine, command=command.strip())
    failed: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="native-iam-bench-"))
    bench = Bench(options=options, workdir=workdir, key=_tokens.SigningKey.generate(), report=report)
    done: set[object] = set()
    started = time.monotonic()
    for number in options.scenarios:
        runner = runners[number]
        if runner in done:
            continue
        done.add(runner)
        print(f"bench: scenario {number} …", file=sys.stderr, flush=True)
        scenario_started = time.monotonic()
        try:
            runner(bench)
            print(f"bench: scenario {number} took {time.monotonic() - scenario_started:.0f} s", file=sys.stderr)
        except Exception as exc:
            failed.append(f"scenario {number}: {exc}")
            traceback.print_exc()
            report.not_measured.append(f"Scenario {number} failed: {str(exc).splitlines()[0]}")
    bench.close()
    options.out.parent.mkdir(parents=True, exist_ok=True)
    chart_path = options.out.with_name("latency.png")
    has_chart = _report.chart(report, chart_path)
    options.out.write_text(_report.render(report, chart_path.name if has_chart else None))
    print(f"bench: wrote {options.out}" + (f" and {chart_path}" if has_chart else ""), file=sys.stderr)
    print(f"bench: {time.monotonic() - started:.0f} s; work directory {workdir}", file=sys.stderr)
    if not options.keep and not failed:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    for failure in failed:
        print(f"bench: FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
