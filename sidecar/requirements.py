"""What a route requires: route metadata and ``context_extensions`` → a :class:`Requirement`.

Two places in Envoy's configuration can carry a route's requirement to the gRPC transport; the
sidecar reads both. The HTTP transport (sidecar/ext_authz_http.py) has neither: there the proxy
sets the ``x-native-iam-requirement`` header to the route metadata schema below as JSON, e.g.
``{"scopes": "orders:read", "methods": {"POST": {"scopes": "orders:write"}}}``
(:meth:`Resolver.resolve_json`).

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

A rule with both ``scopes`` and ``any_of`` needs all of ``scopes`` plus one alternative. A rule that
says nothing requires a valid token and no particular scope (the default). When both places say
something, both must be satisfied (a second source can only tighten). Unknown keys, invalid
scopes, or ``anonymous`` together with scopes make the route invalid: such a route is denied
(reason ``route_invalid``) rather than guessed at, so a typo never opens a route.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from native_iam.scopes import MAX_SCOPES, is_valid_scope

NAMESPACE = "native_iam"
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


def _method(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.isalpha() or not name.isupper():
        raise RequirementError(f"{where}: HTTP method {str(name)[:20]!r} must be upper-case letters")
    return name


@dataclass(slots=True)
class _Parts:
    default: Rule | None = None
    methods: dict[str, Rule | None] = field(default_factory=dict)


def _from_metadata(spec: Mapping[str, Any]) -> _Parts:
    where = "filter_metadata.native_iam"
    parts = _Parts()
    rest = {k: v for k, v in spec.items() if k != "methods"}
    parts.default = _rule(rest, where)
    methods = spec.get("methods", {})
    if not isinstance(methods, Mapping):
        raise RequirementError(f"{where}.methods: expected a map of HTTP method to rule")
    for name, sub in methods.items():
        method = _method(name, f"{where}.methods")
        if not isinstance(sub, Mapping):
            raise RequirementError(f"{where}.methods.{method}: expected a map")
        parts.methods[method] = _rule(sub, f"{where}.methods.{method}") or DEFAULT_RULE
    return parts


def _from_extensions(extensions: Mapping[str, str]) -> _Parts:
    grouped: dict[str | None, dict[str, str]] = {}
    for key, value in extensions.items():
        base, dot, method = key.partition(".")
        if base not in _RULE_KEYS:
            raise RequirementError(f"context_extensions: unknown key {key[:40]!r}")
        grouped.setdefault(_method(method, f"context_extensions.{key[:40]}") if dot else None, {})[base] = value
    parts = _Parts()
    for method, spec in grouped.items():
        rule = _rule(spec, "context_extensions" + (f".{method}" if method else ""))
        if method is None:
            parts.default = rule
        else:
            parts.methods[method] = rule or DEFAULT_RULE
    return parts


def _merge(a: _Parts, b: _Parts) -> Requirement:
    default = _both(a.default, b.default)
    methods: dict[str, Rule] = {}
    for method in set(a.methods) | set(b.methods):
        # A method named in only one source keeps the other source's default for that method.
        left = a.methods.get(method, a.default)
        right = b.methods.get(method, b.default)
        methods[method] = _both(left, right) or DEFAULT_RULE
    return Requirement(default=default or DEFAULT_RULE, methods=methods)


def parse(metadata: Mapping[str, Any] | None, extensions: Mapping[str, str] | None) -> Requirement:
    """The requirement from the ``native_iam`` route metadata and the ``context_extensions``."""
    a = _from_metadata(metadata) if metadata else _Parts()
    b = _from_extensions(extensions) if extensions else _Parts()
    if a.default is None and b.default is None and not a.methods and not b.methods:
        return DEFAULT
    return _merge(a, b)


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


class Resolver:
    """Parses a route's requirement once and reuses it: routes are few, requests are many.

    Keyed by the serialized route metadata and the extensions, so a change of Envoy's configuration
    is picked up at once. Bounded: cleared when it grows past ``max_entries`` (routes come from
    Envoy's configuration, not from clients, so this only guards against a pathological config).
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._cache: dict[tuple[bytes, tuple[tuple[str, str], ...]], Requirement | RequirementError] = {}
        self._json: dict[str, Requirement | RequirementError] = {}
        self._max = max_entries

    def resolve(self, attributes: Any) -> Requirement:
        """The requirement of the request in ``attributes`` (an ``AttributeContext``)."""
        route_md = attributes.route_metadata_context
        extensions = attributes.context_extensions
        key = (route_md.SerializeToString(deterministic=True), tuple(sorted(extensions.items())) if extensions else ())
        found = self._cache.get(key)
        if found is None:
            try:
                md = route_md.filter_metadata
                found = parse(struct_to_python(md[NAMESPACE]) if NAMESPACE in md else None, dict(extensions))
            except RequirementError as exc:
                found = exc
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[key] = found
        if isinstance(found, RequirementError):
            raise found
        return found

    def resolve_json(self, value: str | None) -> Requirement:
        """The requirement carried as JSON in the route metadata schema (the HTTP transport's
        requirement header, set by the proxy's configuration); None: the route says nothing."""
        if value is None:
            return DEFAULT
        found = self._json.get(value)
        if found is None:
            try:
                spec = json.loads(value)
                if not isinstance(spec, dict):
                    raise RequirementError("the requirement header: expected a JSON object")
                found = parse(spec, None)
            except (ValueError, RecursionError) as exc:  # RequirementError, or JSON that does not parse
                found = exc if isinstance(exc, RequirementError) else RequirementError(f"the requirement header: {exc}")
            if len(self._json) >= self._max:
                self._json.clear()
            self._json[value] = found
        if isinstance(found, RequirementError):
            raise found
        return found
