"""sidecar/route_table.py: the file format and every matching rule docs/route-table.md promises."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.requirements import Parts
from sidecar.route_table import Route, RouteTable, request_host
from sidecar.route_table_file import RouteTableError, parse


def table(*rules: str) -> RouteTable:
    """A table from rule lines like ``{path: /a}`` (each gets ``require: {}`` unless it has one)."""
    lines = ["routes:"]
    for rule in rules:
        match, _, require = rule.partition(" => ")
        lines.append(f"  - match: {match}\n    require: {require or '{}'}")
    return parse("\n".join(lines) + "\n")


def line(t: RouteTable, path: str, method: str = "GET", host: str = "svc.local") -> int | None:
    """The 1-based rule index (as written) that matches, or None."""
    found = t.match(host, method, path)
    return None if found is None else found.index + 1


# ---- paths -----------------------------------------------------------------------------------


def test_exact_path_matches_only_itself() -> None:
    """`path` is exact: no trailing slash, no longer path, no other case."""
    t = table("{path: /orders}")
    assert line(t, "/orders") == 1
    assert line(t, "/orders/") is None
    assert line(t, "/orders/1") is None
    assert line(t, "/Orders") is None


def test_query_string_and_fragment_are_not_matched() -> None:
    """The path is matched without its query string (and fragment)."""
    t = table("{path: /orders}")
    assert line(t, "/orders?id=1&x=/admin") == 1
    assert line(t, "/orders#top") == 1


def test_prefix_matches_whole_segments() -> None:
    """`prefix: /api` matches /api, /api/ and /api/x, never /apiary."""
    t = table("{prefix: /api}")
    assert [line(t, p) for p in ("/api", "/api/", "/api/x/y")] == [1, 1, 1]
    assert line(t, "/apiary") is None
    assert line(t, "/ap") is None


def test_prefix_trailing_slash_is_the_same_prefix() -> None:
    """`prefix: /api/` means the same as `/api` (and matches /api itself)."""
    t = table("{prefix: /api/}")
    assert line(t, "/api") == 1 and line(t, "/api/v1") == 1 and line(t, "/apiv1") is None


def test_root_prefix_matches_everything() -> None:
    """`prefix: /` is the catch-all."""
    t = table("{prefix: /}")
    assert [line(t, p) for p in ("/", "/a", "/a/b/", "")] == [1, 1, 1, 1]


def test_longest_prefix_wins_whatever_the_order() -> None:
    """Prefixes: the longest matching one, not the first in the file."""
    t = table("{prefix: /}", "{prefix: /api}", "{prefix: /api/v1}")
    assert line(t, "/api/v1/x") == 3
    assert line(t, "/api/v2") == 2
    assert line(t, "/other") == 1


def test_template_variable_is_one_non_empty_segment() -> None:
    """`{id}` matches one segment: not an empty one, not two, and the segment count is exact."""
    t = table('{template: "/orders/{id}"}')
    assert line(t, "/orders/42") == 1
    assert line(t, "/orders/") is None  # empty segment
    assert line(t, "/orders") is None
    assert line(t, "/orders/1/2") is None  # two segments
    assert line(t, "/orders/1/") is None  # trailing slash: an extra, empty segment


def test_template_with_trailing_slash_matches_only_that() -> None:
    """A template ending in / needs the trailing slash."""
    t = table('{template: "/orders/{id}/"}')
    assert line(t, "/orders/1/") == 1 and line(t, "/orders/1") is None


def test_template_items_is_not_the_item() -> None:
    """`/orders/{id}` and `/orders/{id}/items` are different routes."""
    t = table('{template: "/orders/{id}"} => {scopes: a}', '{template: "/orders/{id}/items"} => {scopes: b}')
    assert line(t, "/orders/7") == 1
    assert line(t, "/orders/7/items") == 2
    assert line(t, "/orders/7/items/3") is None


def test_literal_segment_beats_variable_from_the_left() -> None:
    """Between templates, a literal segment beats a variable, compared left to right."""
    t = table('{template: "/{kind}/{id}"}', '{template: "/{kind}/new"}', '{template: "/orders/{id}"}')
    assert line(t, "/orders/new") == 3  # the first segment decides: literal "orders" beats {kind}
    assert line(t, "/users/new") == 2
    assert line(t, "/users/5") == 1


def test_backtracks_when_the_literal_branch_fails() -> None:
    """A literal first segment that leads nowhere falls back to the variable branch."""
    t = table('{template: "/orders/{id}/x"}', '{template: "/{a}/{b}/y"}')
    assert line(t, "/orders/1/y") == 2
    assert line(t, "/orders/1/x") == 1


def test_exact_beats_template_beats_prefix() -> None:
    """Path kinds: exact, then template, then prefix, whatever the file order."""
    t = table("{prefix: /orders}", '{template: "/orders/{id}"}', "{path: /orders/new}")
    assert line(t, "/orders/new") == 3
    assert line(t, "/orders/9") == 2
    assert line(t, "/orders/9/lines") == 1
    assert line(t, "/orders") == 1


# ---- methods ---------------------------------------------------------------------------------


def test_methods_restrict_a_rule() -> None:
    """A rule naming methods matches those methods only."""
    t = table("{path: /orders, methods: [POST]}")
    assert line(t, "/orders", "POST") == 1
    assert line(t, "/orders", "GET") is None


def test_rule_naming_the_method_beats_one_naming_none() -> None:
    """At the same path, a rule naming the request's method wins over a general one, in any order."""
    t = table("{path: /orders} => {scopes: r}", "{path: /orders, methods: [POST, PUT]} => {scopes: w}")
    assert line(t, "/orders", "POST") == 2
    assert line(t, "/orders", "GET") == 1


def test_file_order_breaks_ties() -> None:
    """Two rules equal in every respect but methods: the earlier one wins."""
    t = table("{path: /o, methods: [GET, POST]}", "{path: /o, methods: [POST]}")
    assert line(t, "/o", "POST") == 1


# ---- hosts -----------------------------------------------------------------------------------


def test_host_is_case_insensitive_and_port_is_ignored() -> None:
    """`Orders.Example.com:8443` matches host orders.example.com; a trailing dot too."""
    t = table("{host: orders.example.com, prefix: /}")
    for host in ("orders.example.com", "Orders.Example.COM:8443", "orders.example.com."):
        assert line(t, "/x", host=host) == 1, host
    assert line(t, "/x", host="other.example.com") is None


def test_request_host_handles_ipv6_literals() -> None:
    """An IPv6 literal keeps its brackets; only the port goes."""
    assert request_host("[::1]:8080") == "[::1]"
    assert request_host("EXAMPLE.com:80") == "example.com"


def test_wildcard_host_matches_subdomains_only() -> None:
    """`*.example.com` matches a.example.com and a.b.example.com, never example.com."""
    t = table("{host: '*.example.com', prefix: /}")
    assert line(t, "/", host="a.example.com") == 1
    assert line(t, "/", host="a.b.example.com") == 1
    assert line(t, "/", host="example.com") is None
    assert line(t, "/", host="badexample.com") is None


def test_host_specificity_comes_before_path_specificity() -> None:
    """Exact host, then the longest wildcard, then host-less rules; a group without a path match falls through."""
    t = table(
        "{path: /orders}",
        "{host: '*.example.com', prefix: /}",
        "{host: '*.shop.example.com', prefix: /}",
        "{host: a.shop.example.com, prefix: /admin}",
    )
    assert line(t, "/orders", host="a.shop.example.com") == 3
    assert line(t, "/admin/x", host="a.shop.example.com") == 4
    assert line(t, "/orders", host="b.example.com") == 2
    assert line(t, "/orders", host="elsewhere") == 1


# ---- the file --------------------------------------------------------------------------------


def test_require_is_the_route_metadata_schema() -> None:
    """`require` is parsed as route metadata: scopes, any_of, anonymous and per-method rules."""
    t = parse(
        textwrap.dedent(
            """\
            routes:
              - match: {prefix: /orders}
                require:
                  scopes: orders:read
                  methods: {POST: {any_of: [orders:write, [orders:admin]]}, OPTIONS: {anonymous: true}}
            """
        )
    )
    parts = t.match("h", "GET", "/orders").requirement  # type: ignore[union-attr]
    assert parts.default is not None and parts.default.alternatives == (frozenset({"orders:read"}),)
    assert parts.methods["OPTIONS"].anonymous  # type: ignore[union-attr]
    assert set(parts.methods["POST"].alternatives) == {frozenset({"orders:write"}), frozenset({"orders:admin"})}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routes: [{match: {path: /a}, require: {scope: x}}]", "line 1: routes[0].require: unknown key 'scope'"),
        ("routes:\n  - match: {path: /a}\n    require: {}\n  - match: {pth: /b}\n    require: {}\n", "line 4"),
        ("routes: [{match: {path: /a, prefix: /a}, require: {}}]", "exactly one of path, template or prefix"),
        ("routes: [{match: {path: /a}}]", "require: expected a map"),
        ("routes: [{match: {path: a}, require: {}}]", "starting with /"),
        ("routes: [{match: {path: '/a?x=1'}, require: {}}]", "no query string"),
        ("routes: [{match: {path: /a/../b}, require: {}}]", "not a normalised path"),
        ("routes: [{match: {prefix: /a%2Fb}, require: {}}]", "not a normalised path"),
        ("routes: [{match: {path: '/a/{id}'}, require: {}}]", "use template"),
        ("routes: [{match: {template: '/files/{id}.json'}, require: {}}]", "whole segment"),
        ("routes: [{match: {template: /files}, require: {}}]", "needs a {variable}"),
        ("routes: [{match: {template: '/{a}/{a}'}, require: {}}]", "used twice"),
        ("routes: [{match: {path: /a, host: 'a.com:80'}, require: {}}]", "no port"),
        ("routes: [{match: {path: /a, host: 'a b'}, require: {}}]", "host name"),
        ("routes: [{match: {path: /a, methods: [get]}, require: {}}]", "upper-case"),
        ("routes: [{match: {path: /a, methods: []}, require: {}}]", "non-empty list"),
        ("routes: [{match: {path: /a}, require: {anonymous: true, scopes: x}}]", "anonymous cannot be combined"),
        ("routes: [{match: {path: /a}, require: {}}, {match: {path: /a}, require: {scopes: x}}]", "line 1"),
        ("routes: [{match: {path: /a}, require: {}, require: {scopes: x}}]", "duplicate key 'require'"),
        ("routes: {a: 1}", "list of rules"),
        ("rules: []", "expected a map with routes"),
        ("routes: []\nextra: 1", "unknown key 'extra'"),
        ("", "empty"),
        ("routes: [\n  {match: {path: /a}\n", "line 3"),
    ],
)
def test_invalid_files_say_where(text: str, message: str) -> None:
    """Every refusal names the rule's line and what is wrong."""
    with pytest.raises(RouteTableError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)  # one log line


def test_empty_routes_is_a_valid_table_that_matches_nothing() -> None:
    """`routes: []` is valid (everything unmatched: denied unless the proxy says otherwise)."""
    assert len(parse("routes: []")) == 0 and parse("routes: []").match("h", "GET", "/") is None


def test_a_thousand_rules_match_without_scanning() -> None:
    """A big table still answers each kind of rule correctly (bench/route_table.py measures the time)."""
    from bench.route_table import requests, table_yaml

    t = parse(table_yaml(1000))
    assert len(t) == 1001
    hits = [t.match(*r) for r in requests(1000)]
    assert [h.kind for h in hits if h] == ["path", "template", "prefix", "template", "prefix"]
    assert hits[-1] is not None and hits[-1].path == "/"  # the catch-all


def test_case_insensitive_table_for_case_insensitive_workloads() -> None:
    """`case_sensitive: false` compares paths in lower case: /ORDERS/7 meets the /orders/{id} rule, so a
    case-insensitive workload cannot be reached under a weaker rule by changing case."""
    t = parse(
        "case_sensitive: false\nroutes:\n"
        "  - match: {template: '/Orders/{ID}'}\n    require: {scopes: r}\n"
        "  - match: {prefix: /}\n    require: {}\n"
    )
    assert line(t, "/ORDERS/7") == 1 and line(t, "/orders/7") == 1 and line(t, "/oRdErS/7") == 1
    assert line(t, "/other") == 2
    with pytest.raises(RouteTableError, match="case_sensitive: expected true or false"):
        parse("case_sensitive: maybe\nroutes: []")
    with pytest.raises(RouteTableError, match="matches what the rule at line"):
        parse(
            "case_sensitive: false\nroutes:\n"
            "  - match: {path: /A}\n    require: {}\n"
            "  - match: {path: /a}\n    require: {}\n"
        )


def test_a_very_long_path_is_judged_by_the_table_not_by_its_length() -> None:
    """A client-made path of tens of thousands of segments matches the right rule (prefix probes follow
    the table's prefix lengths, not the path's segments)."""
    t = table("{prefix: /a}", "{prefix: /a/a/a}", "{host: '*.x.io', prefix: /}")
    path = "/a" * 30_000
    assert line(t, path) == 2
    assert line(t, "/b" + path) is None
    assert line(t, "/", host="a." * 20_000 + "x.io") == 3


# ---- the documented order against an independent oracle -----------------------------------------

_SEGMENTS = ["a", "b", "{v}"]
_HOSTS = [None, "y.x.io", "*.io", "*.x.io"]
_METHODS = [None, frozenset({"GET"}), frozenset({"POST"}), frozenset({"GET", "POST"})]


def _oracle(routes: list[Route], host: str, method: str, path: str) -> Route | None:
    """docs/route-table.md's order, written as a scan over every rule with one sort key."""

    def matches(r: Route) -> bool:
        if r.host is not None:
            if r.host.startswith("*."):
                suffix = r.host[1:]
                if not (host.endswith(suffix) and len(host) > len(suffix)):
                    return False
            elif host != r.host:
                return False
        if r.methods is not None and method not in r.methods:
            return False
        if r.kind == "path":
            return path == r.path
        if r.kind == "prefix":
            p = r.path.rstrip("/")
            return path == p or path.startswith(p + "/")
        want, got = r.path.split("/")[1:], path.split("/")[1:]
        return len(want) == len(got) and all(
            (w.startswith("{") and g != "") or w == g for w, g in zip(want, got, strict=True)
        )

    def key(r: Route) -> tuple[object, ...]:
        if r.host is None:
            host_rank: tuple[int, int] = (2, 0)
        elif r.host.startswith("*."):
            host_rank = (1, -len(r.host))
        else:
            host_rank = (0, 0)
        kind = {"path": 0, "template": 1, "prefix": 2}[r.kind]
        if r.kind == "template":
            shape: object = tuple(1 if s.startswith("{") else 0 for s in r.path.split("/")[1:])
        elif r.kind == "prefix":
            shape = (-len(r.path.rstrip("/")),)
        else:
            shape = ()
        return (host_rank, kind, shape, 0 if r.methods is not None else 1, r.index)

    candidates = [r for r in routes if matches(r)]
    return min(candidates, key=key) if candidates else None


_shape = st.tuples(
    st.sampled_from(["path", "template", "prefix"]),
    st.lists(st.sampled_from(_SEGMENTS), min_size=0, max_size=2),
    st.booleans(),
    st.sampled_from(_HOSTS),
)


@settings(max_examples=500, deadline=None)
@given(
    # Few shapes, many rules: rules sharing a host and path (differing in methods and order) are common.
    shapes=st.lists(_shape, min_size=1, max_size=5),
    picks=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(_METHODS)), max_size=12),
    segments=st.lists(st.sampled_from(["a", "a", "b", "c", ""]), max_size=3),
    host=st.sampled_from(["y.x.io", "z.y.x.io", "Y.X.IO:8443", "x.io", "io", "other"]),
    method=st.sampled_from(["GET", "POST", "PUT"]),
)
def test_match_is_the_documented_order(
    shapes: list[tuple[str, list[str], bool, str | None]],
    picks: list[tuple[int, frozenset[str] | None]],
    segments: list[str],
    host: str,
    method: str,
) -> None:
    """For random tables and requests, RouteTable.match picks what a scan with the documented sort key picks."""
    routes = []
    for index, (pick, methods) in enumerate(picks):
        kind, segs, slash, rule_host = shapes[pick % len(shapes)]
        if kind != "template":
            segs = [s for s in segs if not s.startswith("{")]
        elif not any(s.startswith("{") for s in segs):
            segs = [*segs, "{v}"]
        path = "/" + "/".join(f"{{v{i}}}" if s.startswith("{") else s for i, s in enumerate(segs))
        if slash and kind != "prefix" and path != "/":
            path += "/"
        routes.append(Route(index, index + 1, rule_host, methods, kind, path, Parts()))  # type: ignore[arg-type]
    request = "/" + "/".join(segments)
    expected = _oracle(routes, request_host(host), method, request)
    assert RouteTable(routes).match(host, method, request) is expected


def test_the_example_in_the_docs_is_valid_and_means_what_it_says() -> None:
    """docs/route-table.md's example table parses and matches as its comments say."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "route-table.md").read_text(encoding="utf-8")
    t = parse(re.search(r"```yaml\n(.*?)```", page, flags=re.DOTALL).group(1))  # type: ignore[union-attr]
    assert line(t, "/healthz") == 1
    assert line(t, "/orders/7", "HEAD") == 2 and line(t, "/orders/7", "DELETE") == 3
    assert line(t, "/orders/7", "POST") == 4 and line(t, "/orders", "GET") == 4
    assert line(t, "/x", host="Admin.Example.com:443") == 5
    assert line(t, "/anything/else") == 6
