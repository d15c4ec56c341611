"""How long a route table lookup takes, and whether it grows with the table (it should not).

Usage:  python bench/route_table.py [--rules 1000] [--lookups 200000]

Builds tables of 10 and ``--rules`` rules (exact paths, templates, prefixes, some host-specific,
some per-method), then times ``RouteTable.match`` and the sidecar's whole requirement resolution
(``Resolver.resolve`` on an ext_authz ``AttributeContext``, table lookup + cached combination) for
a mix of requests that hit each kind of rule and some that miss. Also reports how long parsing and
compiling the file takes (what a reload costs). CPU time (``time.process_time``), best of three
runs, so other load on a shared machine disturbs it less. One process, one core: compare the rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from envoy.service.auth.v3 import attribute_context_pb2  # noqa: E402

from sidecar.requirements import Resolver  # noqa: E402
from sidecar.route_table import RouteTable  # noqa: E402
from sidecar.route_table_file import parse  # noqa: E402


def _clock() -> float:
    return time.process_time()


def table_yaml(rules: int) -> str:
    """``rules`` rules: a quarter each exact, template, prefix, and host-specific templates."""
    lines = ["routes:"]
    for i in range(rules):
        kind = i % 4
        if kind == 0:
            lines.append(f"  - match: {{path: /svc{i}/status}}\n    require: {{anonymous: true}}")
        elif kind == 1:
            lines.append(
                f'  - match: {{template: "/svc{i}/items/{{id}}", methods: [GET]}}\n    require: {{scopes: "s{i}:read"}}'
            )
        elif kind == 2:
            lines.append(f'  - match: {{prefix: /svc{i}/api}}\n    require: {{scopes: "s{i}:api"}}')
        else:
            lines.append(
                f'  - match: {{host: "h{i}.example.com", template: "/svc{i}/{{a}}/{{b}}"}}\n'
                f'    require: {{scopes: "s{i}:x"}}'
            )
    lines.append("  - match: {prefix: /}\n    require: {}")
    return "\n".join(lines) + "\n"


def requests(rules: int) -> list[tuple[str, str, str]]:
    """(host, method, path): a hit on each rule kind near the end of the table, and misses."""
    last = rules - rules % 4 - 4 if rules >= 8 else 0
    return [
        ("svc.local:8000", "GET", f"/svc{last}/status"),
        ("svc.local", "GET", f"/svc{last + 1}/items/42?x=1"),
        ("svc.local", "POST", f"/svc{last + 2}/api/v1/orders/17/lines"),
        (f"h{last + 3}.example.com", "PUT", f"/svc{last + 3}/a/b"),
        ("svc.local", "GET", "/nothing/here/at/all"),  # falls to the catch-all
    ]


def _attributes(host: str, method: str, path: str) -> attribute_context_pb2.AttributeContext:
    attributes = attribute_context_pb2.AttributeContext()
    http = attributes.request.http
    http.host, http.method, http.path = host, method, path
    return attributes


def measure(rules: int, lookups: int) -> dict[str, float]:
    text = table_yaml(rules)
    started = _clock()
    table = parse(text)
    parse_ms = (_clock() - started) * 1000
    reqs = requests(rules)
    assert all(table.match(*r) is not None for r in reqs)
    rounds = max(1, lookups // len(reqs))

    started = _clock()
    for _ in range(rounds):
        for host, method, path in reqs:
            table.match(host, method, path)
    match_us = (_clock() - started) / (rounds * len(reqs)) * 1e6

    current: RouteTable = table
    resolver = Resolver(lambda: current)
    attrs = [_attributes(*r) for r in reqs]
    started = _clock()
    for _ in range(rounds):
        for a in attrs:
            resolver.resolve(a)  # every request matches a rule (the catch-all at least)
    resolve_us = (_clock() - started) / (rounds * len(attrs)) * 1e6

    untabled = Resolver()
    started = _clock()
    for _ in range(rounds):
        for a in attrs:
            untabled.resolve(a)
    baseline_us = (_clock() - started) / (rounds * len(attrs)) * 1e6
    return {"parse_ms": parse_ms, "match_us": match_us, "resolve_us": resolve_us, "no_table_us": baseline_us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--lookups", type=int, default=200_000)
    args = parser.parse_args()
    print("| rules | parse + compile ms | match µs | resolve µs (table) | resolve µs (no table) |")
    print("|---:|---:|---:|---:|---:|")
    for rules in (10, args.rules):
        runs = [measure(rules, args.lookups) for _ in range(3)]
        r = {k: min(run[k] for run in runs) for k in runs[0]}
        cells = [
            f"{rules:,}",
            f"{r['parse_ms']:.1f}",
            *(f"{r[k]:.2f}" for k in ("match_us", "resolve_us", "no_table_us")),
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
