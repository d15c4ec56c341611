"""What a request requires: route metadata, ``context_extensions``, the route table → a :class:`Requirement`.

Four sources can say what a route requires; the sidecar reads them all. The HTTP transport
(sidecar/ext_authz_http.py) carries neither route metadata nor extensions: there the proxy sets
the ``x-native-iam-requirement`` header to the route metadata schema below as JSON, e.g.
``{"scopes": "orders:read", "methods": {"POST": {"scopes": "orders:write"}}}``
(:meth:`Resolver.resolve_json`), which counts as route metadata.

1. Route metadata, sent when the ext_authz filter sets
   ``route_metadata_context_namespaces: [native_iam]``::

       metadata:
         filter_metadata:
           native_iam:
             scopes: "orders:read orders:list"   # all of these (a string or a list)
             any_of:                             # one of these alternatives is enough;
               - "orders:admin"                  #   each is all-of (a string or a list)
               - ["orders:read", "orders:list"]
             anonymous: true                     # no token needed at all
             methods:                            # per HTTP method: replaces the rule above
               POST: {scopes: "orders:write"}
               OPTIONS: {anonymous: true}

2. ``check_settings.context_extensions`` of ``ExtAuthzPerRoute`` (strings only)::

       scopes: "orders:read orders:list"
       any_of: "orders:admin | orders:read orders:list"
       anonymous: "true"
       scopes.POST: "orders:write"               # per method: KEY.METHOD
       anonymous.OPTIONS: "true"

3. Envoy Gateway's route metadata (namespace ``envoy-gateway``): the HTTPRoute's annotations
   ``gateway.envoyproxy.io/native-iam-scopes`` etc. (:func:`from_gateway`).

4. The sidecar-local route table (sidecar/route_table.py), consulted by :class:`Resolver` for
   proxies that send none of the above.

A rule with both ``scopes`` and ``any_of`` needs all of ``scopes`` plus one alternative. A rule that
says nothing requires a valid token and no particular scope (the default). When several sources say
something, all must be satisfied (a second source can only tighten). Unknown keys, invalid
scopes, or ``anonymous`` together with scopes make the route invalid: such a route is denied
(reason ``route_invalid``) rather than guessed at, so a typo never opens a route.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from native_iam.scopes import MAX_SCOPES, is_valid_scope

if TYPE_CHECKING:
    from .route_table import Route, RouteTable

NAMESPACE = "native_iam"
GATEWAY_NAMESPACE = "envoy-gateway"
_ANNOTATION = "native-iam-"
_RULE_KEYS = frozenset({"scopes", "any_of", "anonymous"})
_MAX_ALTERNATIVES = 32


class RequirementError(ValueError):
    """The route's requirement metadata is invalid (an operator's configuration error)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One requirement: anonymous, or a valid token holding every scope of some alternative."""

    anonymous: bool = False
    # Any-of: each alternative is an all-of set. (frozenset(),) is "a valid token, any scopes".
    alternatives: tuple[frozenset[str], ...] = (frozenset(),)

    def satisfied_by(self, scopes: frozenset[str]) -> bool:
        for alternative in self.alternatives:  # noqa: SIM110 - a loop is faster than any() here
            if alternative <= scopes:
                return True
        return False

    def needed(self, scopes: frozenset[str]) -> tuple[str, ...]:
        """The scopes to name in ``WWW-Authenticate: … scope="…"``: the alternative closest to ``scopes``."""
        best = min(self.alternatives, key=lambda alt: (len(alt - scopes), sorted(alt)))
        return tuple(sorted(best))

    def describe(self) -> str:
        return " | ".join(" ".join(sorted(alt)) or "(any)" for alt in self.alternatives)


DEFAULT_RULE = Rule()
ANONYMOUS_RULE = Rule(anonymous=True, alternatives=())


@dataclass(frozen=True, slots=True)
class Requirement:
    """A route's rule for each HTTP method (``methods``) and for every other method (``default``)."""

    default: Rule = DEFAULT_RULE
    methods: Mapping[str, Rule] = field(default_factory=dict)

    def for_method(self, method: str) -> Rule:
        if self.methods:
            return self.methods.get(method, self.default)
        return self.default


DEFAULT = Requirement()


def _scope_set(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str):
        items: Iterable[Any] = value.split()
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise RequirementError(f"{where}: expected a space-separated string or a list of scopes")
    scopes = set()
    for item in items:
        if not isinstance(item, str) or not is_valid_scope(item):
            raise RequirementError(f"{where}: invalid scope {str(item)[:40]!r}")
        scopes.add(item)
    if len(scopes) > MAX_SCOPES:
        raise RequirementError(f"{where}: more than {MAX_SCOPES} scopes")
    return frozenset(scopes)


def _truthy(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise RequirementError(f"{where}: expected true or false")


def _rule(spec: Mapping[str, Any], where: str) -> Rule | None:
    """A rule from ``scopes``/``any_of``/``anonymous``; None when the spec says nothing."""
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise RequirementError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if not spec:
        return None
    anonymous = _truthy(spec["anonymous"], f"{where}.anonymous") if "anonymous" in spec else False
    all_of = _scope_set(spec["scopes"], f"{where}.scopes") if "scopes" in spec else frozenset()
    if anonymous:
        if "scopes" in spec or "any_of" in spec:
            raise RequirementError(f"{where}: anonymous cannot be combined with scopes or any_of")
        return ANONYMOUS_RULE
    if "any_of" in spec:
        raw = spec["any_of"]
        if isinstance(raw, str):
            raw = [part for part in raw.split("|")]
        if not isinstance(raw, list) or not raw or len(raw) > _MAX_ALTERNATIVES:
            raise RequirementError(f"{where}.any_of: expected 1 to {_MAX_ALTERNATIVES} alternatives")
        alternatives = tuple(all_of | _scope_set(alt, f"{where}.any_of[{i}]") for i, alt in enumerate(raw))
        return Rule(alternatives=tuple(dict.fromkeys(alternatives)))
    return Rule(alternatives=(all_of,))


def _both(a: Rule | None, b: Rule | None) -> Rule | None:
    """The conjunction of two rules (either may be None: says nothing)."""
    if a is None:
        return b
    if b is None:
        return a
    if a.anonymous:
        return b
    if b.anonymous:
        return a
    combined = tuple(dict.fromkeys(x | y for x in a.alternatives for y in b.alternatives))
    return Rule(alternatives=combined)


def http_method(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.isalpha() or not name.isupper():
        raise RequirementError(f"{where}: HTTP method {str(name)[:20]!r} must be upper-case letters")
    return name


@dataclass(slots=True)
class Parts:
    default: Rule | None = None
    methods: dict[str, Rule | None] = field(default_factory=dict)


def from_metadata(spec: Mapping[str, Any], where: str = "filter_metadata.native_iam") -> Parts:
    """A requirement in the route-metadata schema (also a route table rule's ``require``)."""
    if not isinstance(spec, Mapping):
        raise RequirementError(f"{where}: expected a map")
    parts = Parts()
    rest = {k: v for k, v in spec.items() if k != "methods"}
    parts.default = _rule(rest, where)
    methods = spec.get("methods", {})
    if not isinstance(methods, Mapping):
        raise RequirementError(f"{where}.methods: expected a map of HTTP method to rule")
    for name, sub in methods.items():
        method = http_method(name, f"{where}.methods")
        if not isinstance(sub, Mapping):
            raise RequirementError(f"{where}.methods.{method}: expected a map")
        parts.methods[method] = _rule(sub, f"{where}.methods.{method}") or DEFAULT_RULE
    return parts


def _from_extensions(extensions: Mapping[str, Any], where: str = "context_extensions") -> Parts:
    grouped: dict[str | None, dict[str, Any]] = {}
    for key, value in extensions.items():
        base, dot, method = key.partition(".")
        if base not in _RULE_KEYS:
            raise RequirementError(f"{where}: unknown key {key[:40]!r}")
        grouped.setdefault(http_method(method, f"{where}.{key[:40]}") if dot else None, {})[base] = value
    parts = Parts()
    for method, spec in grouped.items():
        rule = _rule(spec, where + (f".{method}" if method else ""))
        if method is None:
            parts.default = rule
        else:
            parts.methods[method] = rule or DEFAULT_RULE
    return parts


def _says_something(parts: Parts) -> bool:
    return parts.default is not None or bool(parts.methods)


def _merge(*sources: Parts) -> Requirement:
    """The conjunction of every source: a request must satisfy each one (a source only tightens)."""
    default: Rule | None = None
    for source in sources:
        default = _both(default, source.default)
    methods: dict[str, Rule] = {}
    for method in {m for source in sources for m in source.methods}:
        # A method named in only one source keeps the other sources' default for that method.
        rule: Rule | None = None
        for source in sources:
            rule = _both(rule, source.methods.get(method, source.default))
        methods[method] = rule or DEFAULT_RULE
    return Requirement(default=default or DEFAULT_RULE, methods=methods)


def from_gateway(metadata: Mapping[str, Any]) -> Parts:
    """The requirement in Envoy Gateway's route metadata (namespace ``envoy-gateway``).

    Envoy Gateway copies a route's ``gateway.envoyproxy.io/*`` annotations, prefix removed, into
    ``resources[].annotations``. Ours are the context-extension keys with ``native-iam-`` in front
    (``any-of`` for ``any_of``), e.g. ``gateway.envoyproxy.io/native-iam-scopes: "orders:read"`` or
    ``gateway.envoyproxy.io/native-iam-scopes.POST: "orders:write"``. Other annotations are left
    alone; an unknown ``native-iam-*`` one makes the route invalid. When several resources carry
    ours, all of them apply.
    """
    resources = metadata.get("resources", [])
    if not isinstance(resources, list):
        raise RequirementError(f"filter_metadata.{GATEWAY_NAMESPACE}.resources: expected a list")
    found: list[Parts] = []
    for i, resource in enumerate(resources):
        annotations = resource.get("annotations") if isinstance(resource, Mapping) else None
        if not isinstance(annotations, Mapping):
            continue
        where = f"filter_metadata.{GATEWAY_NAMESPACE}.resources[{i}].annotations"
        ours: dict[str, Any] = {}
        for key, value in annotations.items():
            if isinstance(key, str) and key.startswith(_ANNOTATION):
                base, dot, method = key.removeprefix(_ANNOTATION).partition(".")
                ours[base.replace("-", "_") + dot + method] = value
        if ours:
            found.append(_from_extensions(ours, where))
    if len(found) == 1:
        return found[0]
    merged = _merge(*found) if found else None
    return Parts(merged.default, dict(merged.methods)) if merged else Parts()


def _proxy_parts(metadata: Mapping[str, Any], extensions: Mapping[str, Any] | None) -> list[Parts]:
    """What the proxy sent: route metadata of both namespaces and the context extensions."""
    parts: list[Parts] = []
    if metadata.get(NAMESPACE):
        parts.append(from_metadata(metadata[NAMESPACE]))
    if metadata.get(GATEWAY_NAMESPACE):
        if not isinstance(metadata[GATEWAY_NAMESPACE], Mapping):
            raise RequirementError(f"filter_metadata.{GATEWAY_NAMESPACE}: expected a map")
        parts.append(from_gateway(metadata[GATEWAY_NAMESPACE]))
    if extensions:
        parts.append(_from_extensions(extensions))
    return [p for p in parts if _says_something(p)]


def parse(
    metadata: Mapping[str, Any] | None,
    extensions: Mapping[str, str] | None,
    gateway: Mapping[str, Any] | None = None,
) -> Requirement:
    """The requirement from the ``native_iam`` route metadata, the ``context_extensions`` and
    Envoy Gateway's ``envoy-gateway`` route metadata."""
    sources = _proxy_parts({NAMESPACE: metadata, GATEWAY_NAMESPACE: gateway}, extensions)
    return _merge(*sources) if sources else DEFAULT


def struct_to_python(struct: Any) -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as plain Python (numbers stay floats; they are rejected anyway)."""
    return {key: _value(struct.fields[key]) for key in struct.fields}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_python(value.struct_value)
    if kind == "list_value":
        return [_value(v) for v in value.list_value.values]
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)


class RouteUnmatched(RequirementError):
    """A route table is configured, no rule matches the request, and the proxy sent no requirement."""


class _Json(str):
    """A requirement as JSON text, parsed only when the resolver's cache misses."""

    __slots__ = ()

    def spec(self) -> dict[str, Any]:
        try:
            spec = json.loads(self)
        except (ValueError, RecursionError) as exc:
            raise RequirementError(f"the requirement header: not JSON ({type(exc).__name__})") from None
        if not isinstance(spec, dict):
            raise RequirementError("the requirement header: expected a JSON object")
        return spec


_Key = tuple[bytes, tuple[tuple[str, str], ...]]
_NO_PROXY_KEY: _Key = (b"", ())


class Resolver:
    """A request's requirement, from what the proxy sent and the sidecar-local route table.

    Sources (docs/route-table.md): route metadata (``native_iam`` and Envoy Gateway's
    ``envoy-gateway`` namespaces), ``context_extensions``, and the route table rule matching the
    request's host, method and path. **All sources that say something apply** (the stricter of
    them, as between metadata and extensions): the proxy's route is configured for exactly that
    route and the table is maintained beside the workload, so neither may loosen the other
    (anonymous in one and scopes in the other needs the scopes). With a table, a request that no
    rule matches and for which the proxy sent nothing is denied (:class:`RouteUnmatched`): in a
    mesh the table is the only source, and a forgotten path must not be open to every valid token.

    Parses each proxy-sent requirement once, keyed by the serialized metadata and extensions (a
    change of Envoy's configuration is picked up at once), and caches its combination with each
    table rule. Bounded: cleared when it grows past ``max_entries`` (routes come from
    configuration, not from clients, so this only guards against a pathological config).
    """

    def __init__(self, table: Callable[[], RouteTable | None] | None = None, max_entries: int = 4096) -> None:
        self._cache: dict[tuple[_Key, Route | None], Requirement | RequirementError] = {}
        self._max = max_entries
        self._table = table or (lambda: None)

    def resolve(self, attributes: Any) -> Requirement:
        """The requirement of the request in ``attributes`` (an ext_authz ``AttributeContext``)."""
        route_md = attributes.route_metadata_context
        extensions = attributes.context_extensions
        key = (route_md.SerializeToString(deterministic=True), tuple(sorted(extensions.items())) if extensions else ())
        http = attributes.request.http
        return self._resolve(key, route_md, extensions, http.host, http.method, http.path)

    def resolve_request(
        self,
        host: str,
        method: str,
        path: str,
        metadata: Mapping[str, Any] | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> Requirement:
        """The same for a transport without an ``AttributeContext`` (Envoy's ``http_service``):
        ``metadata`` is route metadata as plain Python (namespace → map), if the proxy sent any."""
        key = _NO_PROXY_KEY
        if metadata or extensions:
            key = (repr(sorted((metadata or {}).items())).encode(), tuple(sorted((extensions or {}).items())))
        return self._resolve(key, metadata, extensions, host, method, path)

    def resolve_json(self, value: str | None, host: str = "", method: str = "", path: str = "") -> Requirement:
        """The same for a requirement carried as JSON in the route-metadata schema (a header the
        proxy's configuration sets, for Envoy's ``http_service``); None: the proxy said nothing."""
        if value is None:
            return self._resolve(_NO_PROXY_KEY, None, None, host, method, path)
        return self._resolve((b"json:" + value.encode(), ()), _Json(value), None, host, method, path)

    def _resolve(self, key: _Key, metadata: Any, extensions: Any, host: str, method: str, path: str) -> Requirement:
        table = self._table()
        route = table.match(host, method, path) if table is not None else None
        found = self._cache.get((key, route))
        if found is None:
            found = self._combine(metadata, extensions, route, table is not None)
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[(key, route)] = found
        if isinstance(found, RequirementError):
            raise found.with_traceback(None)  # cached: don't let tracebacks pile up on it
        return found

    @staticmethod
    def _combine(metadata: Any, extensions: Any, route: Route | None, tabled: bool) -> Requirement | RequirementError:
        try:
            if isinstance(metadata, _Json):
                metadata = {NAMESPACE: metadata.spec()}
            elif hasattr(metadata, "filter_metadata"):  # a protobuf Metadata: only our namespaces
                md = metadata.filter_metadata
                metadata = {ns: struct_to_python(md[ns]) for ns in (NAMESPACE, GATEWAY_NAMESPACE) if ns in md}
            sources = _proxy_parts(metadata or {}, dict(extensions) if extensions else None)
        except RequirementError as exc:
            return exc
        if route is not None:
            sources.append(route.requirement)
        elif tabled and not sources:
            return RouteUnmatched("no route table rule matches the request")
        return _merge(*sources) if sources else DEFAULT
