"""The route table file (``NATIVE_IAM_ROUTE_TABLE_FILE``): its format, loaded at start, reloaded when it changes.

The format (docs/route-table.md): ``routes:``, a list of ``{match: {host, methods, path | template
| prefix}, require: <route-metadata schema>}``, and ``case_sensitive``. Every refusal names the
rule's line; duplicate YAML keys and rules that could never apply are refused too.

At start an invalid file is fatal (the CLI refuses to start with one line naming the file and the
error's line), like any other bad setting: a sidecar must not come up deciding by a table other
than the one configured. Later, the file is polled (``os.stat`` through symlinks, about once a
second from the housekeeping loop): a changed device, inode, size or mtime triggers a reload. That
covers editors, ``mv``-into-place and Kubernetes ConfigMap volumes, which swap the ``..data``
symlink to a new directory (mount the directory, not a ``subPath``: those never update). A file
that fails to load keeps the **last good table** in force, is logged once per change (one line:
file and error location) and sets ``native_iam_sidecar_route_table_valid`` to 0 until a good
version arrives; every attempt counts in ``native_iam_sidecar_route_table_reloads_total{result}``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from . import request_path
from .metrics import Metrics
from .requirements import RequirementError, from_metadata, http_method
from .route_table import PATH_KINDS, VARIABLE, PathKind, Route, RouteTable

log = logging.getLogger("sidecar.route_table")

_MATCH_KEYS = frozenset({"host", "methods", *PATH_KINDS})
_RULE_KEYS = frozenset({"match", "require"})
_TOP_KEYS = frozenset({"routes", "case_sensitive"})
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
MAX_RULES = 20_000
MAX_BYTES = 4 * 1024 * 1024

#: What the YAML is read with: libyaml's C parser when PyYAML was built with it.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RouteTableError(ValueError):
    """The route table is invalid; the message names the line and the rule."""


# ---- the format (docs/route-table.md) ----------------------------------------------------------


def _host(value: Any, where: str) -> str | None:
    if not isinstance(value, str):
        raise RouteTableError(f"{where}: expected a host name")
    host = value.lower().rstrip(".")
    if host in {"", "*"}:
        return None
    if ":" in host:
        raise RouteTableError(f"{where}: no port: the request's port is ignored when matching")
    if not _HOST.fullmatch(host):
        raise RouteTableError(f"{where}: expected a host name or *.domain, got {value[:60]!r}")
    return host


def _methods(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not value:
        raise RouteTableError(f"{where}: expected a non-empty list of HTTP methods")
    try:
        return frozenset(http_method(m, where) for m in value)
    except RequirementError as exc:
        raise RouteTableError(str(exc)) from None


def _path(kind: PathKind, value: Any, where: str, case_sensitive: bool = True) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise RouteTableError(f"{where}: expected a path starting with /")
    if not case_sensitive:
        # Variables keep their names' case (only literal segments are compared).
        value = "/".join(seg if VARIABLE.fullmatch(seg) else seg.lower() for seg in value.split("/"))
    if "?" in value or "#" in value:
        raise RouteTableError(f"{where}: no query string or fragment: only the path is matched")
    literal = "/".join("x" if VARIABLE.fullmatch(seg) else seg for seg in value.split("/"))
    if kind != "template":
        literal = value
    if "{" in literal or "}" in literal:
        what = "a {variable} must be a whole segment" if kind == "template" else "use template: for {variables}"
        raise RouteTableError(f"{where}: {what}")
    problem = request_path.problem(literal)
    if problem is not None:
        # Such a request is refused before the table is consulted: the rule could never match.
        raise RouteTableError(f"{where}: not a normalised path ({problem.removeprefix('the request path ')})")
    if kind == "template":
        names = VARIABLE.findall(value)
        if not names:
            raise RouteTableError(f"{where}: a template needs a {{variable}} segment (else use path:)")
        if len(set(names)) != len(names):
            raise RouteTableError(f"{where}: a variable name is used twice")
    if kind == "prefix" and value != "/":
        value = value.rstrip("/")
    return value


def _route(index: int, line: int, spec: Any, case_sensitive: bool = True) -> Route:
    where = f"routes[{index}]"
    if not isinstance(spec, Mapping):
        raise RouteTableError(f"{where}: expected a map with match and require")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise RouteTableError(f"{where}: unknown key {sorted(map(str, unknown))[0]!r}")
    match = spec.get("match")
    if not isinstance(match, Mapping):
        raise RouteTableError(f"{where}.match: expected a map")
    unknown = set(match) - _MATCH_KEYS
    if unknown:
        raise RouteTableError(f"{where}.match: unknown key {sorted(map(str, unknown))[0]!r}")
    kinds = [k for k in PATH_KINDS if k in match]
    if len(kinds) != 1:
        raise RouteTableError(f"{where}.match: exactly one of path, template or prefix")
    kind = kinds[0]
    require = spec.get("require")
    if not isinstance(require, Mapping):
        raise RouteTableError(f"{where}.require: expected a map ({{}} for any valid token)")
    try:
        requirement = from_metadata(require, f"{where}.require")
    except RequirementError as exc:
        raise RouteTableError(str(exc)) from None
    return Route(
        index=index,
        line=line,
        host=_host(match["host"], f"{where}.match.host") if "host" in match else None,
        methods=_methods(match["methods"], f"{where}.match.methods") if "methods" in match else None,
        kind=kind,
        path=_path(kind, match[kind], f"{where}.match.{kind}", case_sensitive),
        requirement=requirement,
    )


def _duplicate_keys(node: yaml.Node) -> None:
    """PyYAML keeps the last of two equal keys silently; a table must not hide a rule that way."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        raise RouteTableError(f"line {key.start_mark.line + 1}: duplicate key {key.value[:40]!r}")
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _rule_lines(node: yaml.Node) -> list[int]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "routes" and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def parse(text: str) -> RouteTable:
    """A table from YAML text; :class:`RouteTableError` says where it is wrong."""
    if len(text) > MAX_BYTES:
        raise RouteTableError(f"larger than {MAX_BYTES} bytes")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RouteTableError("empty: expected a map with routes")
        _duplicate_keys(node)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RouteTableError(f"{at}not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RouteTableError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()
    if not isinstance(data, Mapping) or "routes" not in data:
        raise RouteTableError("expected a map with routes")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise RouteTableError(f"unknown key {sorted(map(str, unknown))[0]!r}")
    rules = data["routes"]
    if not isinstance(rules, list):
        raise RouteTableError("routes: expected a list of rules")
    if len(rules) > MAX_RULES:
        raise RouteTableError(f"routes: more than {MAX_RULES} rules")
    case_sensitive = data.get("case_sensitive", True)
    if not isinstance(case_sensitive, bool):
        raise RouteTableError("case_sensitive: expected true or false")
    lines = _rule_lines(node)
    routes: list[Route] = []
    seen: dict[tuple[Any, ...], Route] = {}
    for index, spec in enumerate(rules):
        line = lines[index] if index < len(lines) else 0
        try:
            route = _route(index, line, spec, case_sensitive)
        except RouteTableError as exc:
            raise RouteTableError(f"line {line}: {exc}") from None
        key = (route.host, route.kind, route.path, route.methods)
        if key in seen:
            raise RouteTableError(f"line {line}: routes[{index}] matches what the rule at line {seen[key].line} does")
        seen[key] = route
        routes.append(route)
    return RouteTable(routes, case_sensitive=case_sensitive)


# ---- the file -----------------------------------------------------------------------------------

_Stamp = tuple[int, int, int, int] | None
POLL_INTERVAL_S = 1.0


def _stamp(path: str) -> _Stamp:
    try:
        st = os.stat(path)  # follows symlinks: a ConfigMap's ..data swap changes the inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def load(path: str) -> RouteTable:
    """The table in ``path``; :class:`RouteTableError` names the file and where it is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        text = data.decode("utf-8")
    except OSError as exc:
        raise RouteTableError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RouteTableError(f"{path}: not UTF-8 (byte {exc.start})") from None
    try:
        return parse(text)
    except RouteTableError as exc:
        raise RouteTableError(f"{path}: {exc}") from None
    except (RecursionError, MemoryError, ValueError, TypeError) as exc:
        # Whatever the parser did not foresee is still an invalid file, never a crashed reload.
        raise RouteTableError(f"{path}: cannot load: {type(exc).__name__}") from None


class RouteTableFile:
    """The table in force and the file it came from. :attr:`table` is swapped whole (atomically)."""

    def __init__(
        self,
        path: str,
        metrics: Metrics | None = None,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._metrics = metrics
        self._interval = poll_interval_s
        self._clock = clock
        self._stamp = _stamp(path)
        self.table = load(path)  # raises: an invalid table at start is fatal
        self._next = clock() + poll_interval_s
        self._report(valid=True)

    def current(self) -> RouteTable:
        return self.table

    def due(self) -> bool:
        """Time to look at the file again (cheap: the housekeeping loop asks often)."""
        return self._clock() >= self._next

    def poll(self) -> bool | None:
        """Reload if the file changed: True when a new table is in force, False when the new
        version is invalid (the last good table stays), None when nothing changed."""
        self._next = self._clock() + self._interval
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            table = load(self.path)
        except RouteTableError as exc:
            log.error(
                "route table invalid, keeping the last good one",
                extra={"file": self.path, "error": str(exc), "rules": len(self.table)},
            )
            self._report(valid=False, result="invalid")
            return False
        self.table = table
        log.info("route table reloaded", extra={"file": self.path, "rules": len(table)})
        self._report(valid=True, result="ok")
        return True

    def _report(self, *, valid: bool, result: str | None = None) -> None:
        m = self._metrics
        if m is None:
            return
        m.route_table_valid.set(1 if valid else 0)
        m.route_table_rules.set(len(self.table))
        if result is not None:
            m.route_table_reloads.labels(result).inc()


__all__ = ["MAX_RULES", "RouteTableError", "RouteTableFile", "load", "parse"]
