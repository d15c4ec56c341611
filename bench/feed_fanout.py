"""What one revocation costs the token service when it fans out to many feed subscribers.

    python -m bench.feed_fanout                       # 1,000 subscribers, 30 revocations, twice
    python -m bench.feed_fanout -n 200 -r 10 --runs 1 --profile

Starts a token service on SQLite in a temporary directory, connects N simulated sidecars
(``bench/feed_subscribers.py``: one connection and one ``WatchRevocations`` stream each, in two
processes), measures the token service's CPU over an idle window, then over R revocations made
through the admin API, and prints the CPU per revocation fanned out (revocation window minus the
same-length idle window, divided by R: heartbeats and polling cancel out) and the p50/p99 of
revoke → the last subscriber to receive it. CPU time is the primary figure: the machine is shared,
so wall-clock latency moves with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import _load, _profile, _token_service
from bench._system import cpu_seconds
from bench.feed_subscribers import Fleet
from bench.scenario_revocation import Revoker, _access_tokens, _jti
from bench.scenario_token_service import _wait_for_grant

SUBSCRIBER_PROCESSES = 2


@dataclass
class Result:
    subscribers: int
    revocations: int
    complete: int  # revocations every subscriber received
    idle_cpu_s: float
    busy_cpu_s: float
    lasts: list[float]  # per complete revocation: seconds from revoke to its last subscriber

    @property
    def cpu_ms_per_fanout(self) -> float:
        return (self.busy_cpu_s - self.idle_cpu_s) / self.revocations * 1000

    def line(self) -> str:
        p50, p99 = (_load.percentile(self.lasts, q) * 1000 for q in (50, 99))
        return (
            f"{self.subscribers} subscribers, {self.complete}/{self.revocations} revocations reached all: "
            f"token service CPU {self.cpu_ms_per_fanout:.1f} ms per fan-out "
            f"(window {self.busy_cpu_s:.2f} s, idle {self.idle_cpu_s:.2f} s); "
            f"revoke → last subscriber p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        )


def measure(workdir: Path, n: int, revocations: int, spacing_s: float, profile: Path | None) -> Result:
    service = _token_service.start(workdir, db_url=f"sqlite:///{workdir / 'feed.db'}", name="token-service-fanout")
    revoker = None
    fleet: Fleet | None = None
    try:
        grant = _wait_for_grant(service)
        revoker = Revoker(service)
        jtis = [_jti(t) for t in _access_tokens(service, grant.refresh_token, revocations)]
        fleet = Fleet.start(workdir, service.grpc, n, processes=SUBSCRIBER_PROCESSES)
        fleet.wait_synced()
        window = revocations * spacing_s + 1.0  # the last event's fan-out ends well within 1 s
        time.sleep(1.0)  # let the connection burst settle
        before = cpu_seconds(service.pid)
        time.sleep(window)
        idle = cpu_seconds(service.pid) - before
        spy = _profile.start(service.pid, window, profile) if profile else None
        revoked: dict[str, float] = {}
        before = cpu_seconds(service.pid)
        for jti in jtis:
            revoked[jti] = time.time()
            revoker.revoke(jti)
            time.sleep(spacing_s)
        time.sleep(1.0)
        busy = cpu_seconds(service.pid) - before
        if spy is not None:
            spy.wait()
    finally:
        if fleet is not None:
            fleet.stop()
        if revoker is not None:
            revoker.close()
        service.stop()
    assert fleet is not None  # started, or the block above raised
    lasts = fleet.last_arrivals(revoked)
    return Result(n, revocations, len(lasts), idle, busy, lasts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--subscribers", type=int, default=1000)
    parser.add_argument("-r", "--revocations", type=int, default=30)
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between revocations")
    parser.add_argument("--runs", type=int, default=2, help="repeat the measurement (fresh service each time)")
    parser.add_argument("--profile", action="store_true", help="py-spy the token service during the revocations")
    args = parser.parse_args(argv)
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="native-iam-fanout-") as tmp:
            workdir = Path(tmp)
            raw = Path(tempfile.gettempdir()) / f"feed-fanout-{run}.raw" if args.profile else None
            result = measure(workdir, args.subscribers, args.revocations, args.spacing, raw)
            print(f"run {run + 1}: {result.line()}", flush=True)
            if raw is not None and raw.exists():
                summary = _profile.summarize(raw)
                print(f"  py-spy ({summary.samples} samples, raw stacks in {raw}); self / total:")
                for (leaf, share), (fn, total) in zip(summary.self_share, summary.total_share, strict=False):
                    print(f"    {share:5.1%} {leaf:70.70}  {total:5.1%} {fn}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
