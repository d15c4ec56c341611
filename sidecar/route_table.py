"""The sidecar-local route table: (host, method, path) → the rule that says what a request needs.

For proxies that cannot send a route's requirement with the check (Istio's ext_authz providers,
Envoy's ``http_service``, nginx ``auth_request``), the sidecar looks the request up in a table of
its own (``NATIVE_IAM_ROUTE_TABLE_FILE``, docs/route-table.md). Each rule's ``require`` is exactly
the ``native_iam`` route-metadata schema, parsed by sidecar/requirements.py; the file format and
its reloading are sidecar/route_table_file.py.

Matching (docs/route-table.md says the same for operators):

* **Most specific wins**, not file order: first the host (an exact host, then ``*.suffix`` rules
  from the longest suffix, then rules without a host); within that, the path (``path`` exact, then
  ``template``, then ``prefix`` from the longest); then a rule naming ``methods`` before one that
  does not; file order breaks the remaining ties. A host group with no matching path falls through
  to the next, less specific one.
* Paths are matched as Envoy normalised them, query string and fragment removed, **case-sensitive**
  (``case_sensitive: false`` at the top of the file compares both sides in lower case),
  byte for byte (percent-escapes Envoy leaves, e.g. ``%20``, are matched as written: write table
  paths in that normal form; a path with ``%2F``, ``//``, ``..`` is refused before the table is
  consulted, sidecar/request_path.py). A trailing slash is significant for ``path`` and
  ``template``; ``prefix`` matches whole segments (``/api`` matches ``/api``, ``/api/`` and
  ``/api/x``, never ``/apiary``; ``prefix: /api/`` means the same as ``/api``).
* A template ``{name}`` matches exactly one non-empty segment; segments are compared left to right
  and a literal segment beats a ``{variable}`` (``/orders/new`` before ``/orders/{id}``).
* Hosts are case-insensitive, the port and a trailing dot are ignored; ``*.example.com`` matches
  any host ending in ``.example.com`` (not ``example.com`` itself).

Lookups never scan the rules: exact paths and prefixes are dictionaries, templates a trie by
segment, wildcard hosts a dictionary by suffix. Prefixes and wildcard suffixes are probed by the
lengths the table has, not by every boundary of the request (a client can send 60 KiB of path).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .requirements import Parts

PathKind = Literal["path", "template", "prefix"]
PATH_KINDS: tuple[PathKind, ...] = ("path", "template", "prefix")
VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, eq=False, slots=True)
class Route:
    """One rule of the table. Compared by identity: the resolver caches per rule object."""

    index: int
    line: int
    host: str | None
    methods: frozenset[str] | None
    kind: PathKind
    path: str
    requirement: Parts

    def describe(self) -> str:
        return f"line {self.line} ({self.kind} {self.path})"


def _rank(route: Route) -> tuple[int, int]:
    """Within one host group and one path: a rule naming methods first, then file order."""
    return (0 if route.methods is not None else 1, route.index)


def _pick(routes: Sequence[Route], method: str) -> Route | None:
    for route in routes:
        if route.methods is None or method in route.methods:
            return route
    return None


@dataclass(slots=True)
class _Node:
    """A template trie node: literal children, one ``{variable}`` child, rules ending here."""

    literal: dict[str, _Node] = field(default_factory=dict)
    variable: _Node | None = None
    routes: list[Route] = field(default_factory=list)


def _walk(node: _Node, segments: list[str], i: int, method: str) -> Route | None:
    if i == len(segments):
        return _pick(node.routes, method)
    segment = segments[i]
    child = node.literal.get(segment)
    if child is not None:
        found = _walk(child, segments, i + 1, method)
        if found is not None:
            return found
    if node.variable is not None and segment:
        return _walk(node.variable, segments, i + 1, method)
    return None


class _Paths:
    """The rules of one host group, indexed by path."""

    def __init__(self) -> None:
        self.exact: dict[str, list[Route]] = {}
        self.prefix: dict[str, list[Route]] = {}
        self.templates = _Node()
        self._has_templates = False
        self._prefix_lengths: list[int] = []

    def add(self, route: Route) -> None:
        if route.kind == "path":
            self.exact.setdefault(route.path, []).append(route)
        elif route.kind == "prefix":
            self.prefix.setdefault(route.path.rstrip("/"), []).append(route)
        else:
            node = self.templates
            for segment in route.path.split("/")[1:]:
                if VARIABLE.fullmatch(segment):
                    node.variable = node.variable or _Node()
                    node = node.variable
                else:
                    node = node.literal.setdefault(segment, _Node())
            node.routes.append(route)
            self._has_templates = True

    def sort(self) -> None:
        # The lengths of the prefixes, longest first: a lookup probes these, not every segment
        # boundary of the request's path (which a client makes as long as Envoy allows).
        self._prefix_lengths = sorted({len(p) for p in self.prefix}, reverse=True)
        for routes in (*self.exact.values(), *self.prefix.values()):
            routes.sort(key=_rank)
        stack = [self.templates]
        while stack:
            node = stack.pop()
            node.routes.sort(key=_rank)
            stack.extend(node.literal.values())
            if node.variable is not None:
                stack.append(node.variable)

    def match(self, path: str, method: str) -> Route | None:
        routes = self.exact.get(path)
        if routes is not None:
            found = _pick(routes, method)
            if found is not None:
                return found
        if self._has_templates:
            found = _walk(self.templates, path.split("/")[1:], 0, method)
            if found is not None:
                return found
        if self.prefix:
            # Prefixes end at a segment boundary of the path ("/a" matches "/a", "/a/…", not "/ab").
            size = len(path)
            for length in self._prefix_lengths:
                if length > size or (length < size and path[length] != "/"):
                    continue
                routes = self.prefix.get(path[:length])
                if routes is not None:
                    found = _pick(routes, method)
                    if found is not None:
                        return found
        return None


def request_host(authority: str) -> str:
    """The host a rule is matched against: lower case, without port or trailing dot."""
    host = authority.lower()
    if host.startswith("["):  # an IPv6 literal: [::1]:8080
        end = host.find("]")
        host = host[: end + 1] if end > 0 else host
    else:
        host = host.partition(":")[0]
    return host.rstrip(".")


class RouteTable:
    """A compiled, immutable table. :meth:`match` is safe to call from any thread."""

    def __init__(self, routes: Iterable[Route] = (), *, case_sensitive: bool = True) -> None:
        self.routes = tuple(routes)
        # False: paths compared in lower case (rules are written or lowered so at parse time), for
        # workloads whose router ignores case — else /ORDERS would miss the /orders rule.
        self.case_sensitive = case_sensitive
        self._exact: dict[str, _Paths] = {}
        self._wildcard: dict[str, _Paths] = {}  # ".example.com" → rules for "*.example.com"
        self._any = _Paths()
        for route in self.routes:
            if route.host is None:
                group = self._any
            elif route.host.startswith("*."):
                group = self._wildcard.setdefault(route.host[1:], _Paths())
            else:
                group = self._exact.setdefault(route.host, _Paths())
            group.add(route)
        for group in (self._any, *self._exact.values(), *self._wildcard.values()):
            group.sort()
        self._suffix_lengths = sorted({len(suffix) for suffix in self._wildcard}, reverse=True)

    def __len__(self) -> int:
        return len(self.routes)

    def _groups(self, host: str) -> Iterable[_Paths]:
        exact = self._exact.get(host)
        if exact is not None:
            yield exact
        size = len(host)
        for length in self._suffix_lengths:  # longest suffix first, at least one label before it
            if length < size:
                group = self._wildcard.get(host[size - length :])
                if group is not None:
                    yield group
        yield self._any

    def match(self, authority: str, method: str, path: str) -> Route | None:
        """The most specific rule for the request, or None. ``path`` may carry a query string."""
        path = path.partition("?")[0].partition("#")[0]
        if not self.case_sensitive:
            path = path.lower()
        host = request_host(authority) if (self._exact or self._wildcard) else ""
        for group in self._groups(host):
            found = group.match(path, method)
            if found is not None:
                return found
        return None


__all__ = ["PATH_KINDS", "VARIABLE", "PathKind", "Route", "RouteTable", "request_host"]
