"""Parsing of the load generators' output in bench/_load.py."""

from __future__ import annotations

import pytest

from bench import _load

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:1234/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   425.67us  100.00us   3.00ms   90.00%
    Req/Sec    70.00k     2.00k   75.00k    80.00%
  Latency Distribution
     50%  400.00us
     75%  450.00us
     90%  500.00us
     99%    1.25ms
  140000 requests in 2.00s, 10.00MB read
  Non-2xx or 3xx responses: 7
Requests/sec:  70000.00
Transfer/sec:      5.00MB
"""

H2LOAD_OUTPUT = """finished in 2.00s, 1000.00 req/s, 50.00KB/s
requests: 2000 total, 2000 started, 2000 done, 1990 succeeded, 10 failed, 0 errored, 0 timeout
status codes: 1990 2xx, 0 3xx, 10 4xx, 0 5xx
"""


def test_wrk_rate_errors_and_percentiles_are_parsed() -> None:
    """wrk's request rate, non-2xx count and latency percentiles are read with their units."""
    result = _load.parse_wrk(WRK_OUTPUT, cpu_s=1.5)
    assert (result.requests, result.rps, result.errors) == (140000, 70000.0, 7)
    assert result.percentiles_s[99.0] == pytest.approx(0.00125)
    assert result.percentiles_s[50.0] == pytest.approx(0.0004)


def test_h2load_counts_failures_and_reads_the_request_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """h2load's failed requests count as errors, and per-request latencies come from its log."""
    log = tmp_path / "log"
    log.write_text("".join(f"1700000000000000\t200\t{us}\n" for us in (300, 100, 200)) + "1\t401\t5\n")
    result = _load.parse_h2load(H2LOAD_OUTPUT, cpu_s=0.1, log_file=log)
    assert result.errors == 10
    assert result.latencies_s == [0.0001, 0.0002, 0.0003]
    assert result.percentiles_s[50] == pytest.approx(0.0002)


def test_percentile_is_nearest_rank() -> None:
    """p99 of 1..100 is 99 and p100 is the maximum (nearest-rank definition)."""
    values = [float(v) for v in range(1, 101)]
    assert _load.percentile(values, 99) == 99.0
    assert _load.percentile(values, 100) == 100.0
    assert _load.percentile(values, 50) == 50.0


def test_grpc_frame_has_the_length_prefix() -> None:
    """A gRPC message is framed as a zero compression flag and a 4-byte big-endian length."""
    assert _load.grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"


def test_redis_rows_are_compared_with_the_same_configuration_without_redis() -> None:
    """bench/run.py --redis: each '+redis' case gets a note with its ratio to the same database,
    workers and case without Redis (and nothing when that row is missing)."""
    from bench._report import Section
    from bench.run import parse_args
    from bench.scenario_token_service import _redis_ratios

    assert parse_args(["-s", "5", "--redis"]).redis and not parse_args(["-s", "5"]).redis
    section = Section("5", "", [])
    figures = {
        ("sqlite ×1", "gRPC password grant"): (10.0, 0.0),
        ("sqlite+redis ×1", "gRPC password grant"): (12.0, 0.0),
        ("postgresql+redis ×2", "HTTP refresh grant"): (5.0, 0.0),
    }
    _redis_ratios(section, figures)
    assert section.notes == ["sqlite+redis ×1 gRPC password grant: ×1.20 of the same without Redis (12/s against 10/s)"]
