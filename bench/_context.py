"""What every scenario receives: the options, a work directory, the harness's signing key and the
report to add to."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._report import Report
from bench._tokens import SigningKey


@dataclass(frozen=True)
class Options:
    scenarios: tuple[int, ...]
    duration_s: float
    smoke: bool
    envoy_concurrency: int
    canned_mode: str
    canned_threads: int
    sidecar_workers: tuple[int, ...]
    token_service_workers: tuple[int, ...]
    revocations: int
    subscribers: int
    revoked_jti: int
    out: Path
    keep: bool
    profile: bool = False
    #: Scenario 5 also runs each configuration with SYSTEM_CACHE_URL (a redis-server of its own).
    redis: bool = False


@dataclass
class Bench:
    options: Options
    workdir: Path
    key: SigningKey
    report: Report

    _postgres: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)
    _cluster: Any = field(default=None, repr=False)

    def settle(self) -> None:
        """Before a measurement: wait a little for other people's CPU use on the shared cores to
        calm down (skipped in smoke runs)."""
        if not self.options.smoke:
            from bench._system import wait_for_quiet

            wait_for_quiet(max_wait_s=10.0)

    def start_canned(self, processes: int, mode: str | None = None) -> Any:
        """The canned floor: by default the same grpcio server kind and thread count as the sidecar."""
        from bench._stack import start_canned

        o = self.options
        return start_canned(self.workdir, processes=processes, mode=mode or o.canned_mode, threads=o.canned_threads)

    def wants(self, scenario: int) -> bool:
        return scenario in self.options.scenarios

    def database_url(self, db: str, name: str) -> str:
        """A fresh, empty database: a SQLite file in the work directory, or a new database on the
        run's one PostgreSQL (pgserver), started on first use."""
        if db == "sqlite":
            return f"sqlite:///{self.workdir / f'{name}.db'}"
        if self._postgres is None:
            from bench._token_service import Postgres

            self._postgres = Postgres()
        return str(self._postgres.database())

    def start_token_service(
        self, scenario: int, db: str, workers: int = 1, label: str | None = None, *, redis: bool = False
    ) -> Any:
        """A token service (``workers`` processes) on a fresh ``db`` (and, ``redis``, the run's
        Redis as SYSTEM_CACHE_URL), or None when that is not available here (recorded under "not
        measured")."""
        from bench import _token_service

        # Every token service trusts the run's stand-in cluster: the service-account assertion rows.
        env = {"NATIVE_IAM_WORKERS": str(workers), "NATIVE_IAM_CLUSTER_ISSUERS_FILE": str(self.cluster().trust_file)}
        suffix = "-redis" if redis else ""
        try:
            url = self.database_url(db, f"bench-s{scenario}-w{workers}{suffix}")
            if redis:
                env["SYSTEM_CACHE_URL"] = self.redis_url()
        except Exception as exc:
            self.report.not_measured.append(f"Scenario {scenario} on {db}{suffix}: {str(exc).splitlines()[0]}")
            return None
        print(f"bench:   token service ×{workers} on {label or db}{suffix}", file=sys.stderr, flush=True)
        return _token_service.start(
            self.workdir, db_url=url, name=f"token-service-s{scenario}-{db}-w{workers}{suffix}", env=env
        )

    def cluster(self) -> Any:
        """The run's stand-in Kubernetes cluster (bench/_cluster.py), made on first use."""
        if self._cluster is None:
            from bench import _cluster, _token_service

            self._cluster = _cluster.Cluster(
                self.workdir, audience=_token_service.ISSUER, client_id=_token_service.WORKLOAD_CLIENT
            )
        return self._cluster

    def redis_url(self) -> str:
        """The run's one redis-server (started on first use), emptied: SYSTEM_CACHE_URL."""
        if self._redis is None:
            from bench._token_service import Redis

            self._redis = Redis(self.workdir)
        return str(self._redis.fresh())

    def redis_pids(self) -> list[int]:
        return [self._redis.pid] if self._redis is not None else []

    def postgres_pids(self) -> list[int]:
        return self._postgres.server_pids() if self._postgres is not None else []

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._postgres is not None:
            self._postgres.close()
            self._postgres = None
