"""sidecar/requirements.py: every form of route requirement, from metadata and context_extensions."""

from __future__ import annotations

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar import route_table_file
from sidecar.requirements import DEFAULT, Requirement, RequirementError, Resolver, RouteUnmatched, Rule, parse


def test_nothing_said_is_the_default_rule() -> None:
    """A route that says nothing requires a valid token with no particular scope."""
    rule = parse(None, None).for_method("GET")
    assert not rule.anonymous and rule.satisfied_by(frozenset())


def test_scopes_string_is_all_of() -> None:
    """`scopes` as a space-separated string needs every scope."""
    rule = parse({"scopes": "a b"}, None).for_method("GET")
    assert rule.satisfied_by(frozenset({"a", "b", "c"})) and not rule.satisfied_by(frozenset({"a"}))


def test_scopes_list_is_all_of() -> None:
    """`scopes` as a list needs every scope."""
    rule = parse({"scopes": ["a", "b"]}, None).for_method("GET")
    assert rule.alternatives == (frozenset({"a", "b"}),)


def test_any_of_alternatives() -> None:
    """`any_of` is satisfied by any one alternative, each being all-of."""
    rule = parse({"any_of": ["admin", ["r", "l"]]}, None).for_method("GET")
    assert rule.satisfied_by(frozenset({"admin"}))
    assert rule.satisfied_by(frozenset({"r", "l"}))
    assert not rule.satisfied_by(frozenset({"r"}))


def test_scopes_and_any_of_combine() -> None:
    """`scopes` plus `any_of` needs all of `scopes` and one alternative."""
    rule = parse({"scopes": "base", "any_of": ["x", "y"]}, None).for_method("GET")
    assert rule.satisfied_by(frozenset({"base", "y"})) and not rule.satisfied_by(frozenset({"y"}))


def test_anonymous_route() -> None:
    """`anonymous: true` needs no token."""
    assert parse({"anonymous": True}, None).for_method("GET").anonymous


def test_per_method_rules_override_the_default() -> None:
    """`methods.POST` applies to POST only; other methods keep the route's rule."""
    req = parse({"scopes": "r", "methods": {"POST": {"scopes": "w"}, "OPTIONS": {"anonymous": True}}}, None)
    assert req.for_method("POST").alternatives == (frozenset({"w"}),)
    assert req.for_method("OPTIONS").anonymous
    assert req.for_method("GET").alternatives == (frozenset({"r"}),)


def test_extensions_scopes() -> None:
    """context_extensions `scopes` is a space-separated all-of list."""
    assert parse(None, {"scopes": "a b"}).for_method("GET").alternatives == (frozenset({"a", "b"}),)


def test_extensions_any_of_uses_pipes() -> None:
    """context_extensions `any_of` separates alternatives with '|'."""
    rule = parse(None, {"any_of": "admin | r l"}).for_method("GET")
    assert set(rule.alternatives) == {frozenset({"admin"}), frozenset({"r", "l"})}


def test_extensions_per_method_keys() -> None:
    """context_extensions `scopes.POST` applies to POST only."""
    req = parse(None, {"scopes": "r", "scopes.POST": "w", "anonymous.OPTIONS": "true"})
    assert req.for_method("POST").alternatives == (frozenset({"w"}),)
    assert req.for_method("OPTIONS").anonymous
    assert req.for_method("GET").alternatives == (frozenset({"r"}),)


def test_both_sources_must_be_satisfied() -> None:
    """Metadata and extensions together: both requirements apply (a second source only tightens)."""
    rule = parse({"scopes": "a"}, {"scopes": "b"}).for_method("GET")
    assert rule.alternatives == (frozenset({"a", "b"}),)


def test_anonymous_in_one_source_does_not_loosen_the_other() -> None:
    """Anonymous metadata with scopes in extensions still needs the scopes."""
    rule = parse({"anonymous": True}, {"scopes": "b"}).for_method("GET")
    assert not rule.anonymous and rule.alternatives == (frozenset({"b"}),)


@pytest.mark.parametrize(
    ("metadata", "extensions"),
    [
        ({"scope": "a"}, None),  # typo: would silently become the default
        ({"anonymous": True, "scopes": "a"}, None),
        ({"scopes": 'bad"scope'}, None),
        ({"scopes": 5}, None),
        ({"any_of": []}, None),
        ({"methods": {"get": {"scopes": "a"}}}, None),
        ({"methods": "POST"}, None),
        ({"anonymous": "maybe"}, None),
        (None, {"scope": "a"}),
        (None, {"scopes.post": "a"}),
    ],
)
def test_invalid_requirements_raise(metadata: dict | None, extensions: dict | None) -> None:
    """Unknown keys, bad scopes, bad methods and contradictions are configuration errors."""
    with pytest.raises(RequirementError):
        parse(metadata, extensions)


def test_needed_names_the_closest_alternative() -> None:
    """For WWW-Authenticate, the alternative with the fewest missing scopes is named."""
    rule = Rule(alternatives=(frozenset({"x", "y", "z"}), frozenset({"a", "b"})))
    assert rule.needed(frozenset({"a"})) == ("a", "b")


def _request(metadata: dict | None = None, extensions: dict | None = None) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    if metadata is not None:
        s = struct_pb2.Struct()
        s.update(metadata)
        request.attributes.route_metadata_context.filter_metadata["native_iam"].CopyFrom(s)
    for k, v in (extensions or {}).items():
        request.attributes.context_extensions[k] = v
    return request


def test_resolver_reads_route_metadata_struct() -> None:
    """The resolver reads filter_metadata.native_iam from the CheckRequest's attributes."""
    req = Resolver().resolve(_request({"scopes": ["a"], "methods": {"POST": {"any_of": ["w", "admin"]}}}).attributes)
    assert req.for_method("GET").alternatives == (frozenset({"a"}),)
    assert set(req.for_method("POST").alternatives) == {frozenset({"w"}), frozenset({"admin"})}


def test_resolver_reads_context_extensions() -> None:
    """The resolver reads context_extensions from the CheckRequest's attributes."""
    req = Resolver().resolve(_request(extensions={"scopes": "a"}).attributes)
    assert req.for_method("GET").alternatives == (frozenset({"a"}),)


def test_resolver_default_without_anything() -> None:
    """A request without route metadata or extensions gets the default requirement."""
    assert Resolver().resolve(_request().attributes) is DEFAULT


def test_resolver_caches_invalid_routes_as_errors() -> None:
    """An invalid route raises every time, not only the first."""
    resolver = Resolver()
    attributes = _request({"scope": "typo"}).attributes
    for _ in range(2):
        with pytest.raises(RequirementError):
            resolver.resolve(attributes)


@settings(max_examples=300, deadline=None)
@given(
    metadata=st.recursive(
        st.one_of(st.none(), st.booleans(), st.text(max_size=12), st.floats(allow_nan=False)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.sampled_from(["scopes", "any_of", "anonymous", "methods", "GET", "x"]), inner, max_size=3
            ),
        ),
        max_leaves=8,
    ),
    extensions=st.dictionaries(
        st.sampled_from(["scopes", "any_of", "anonymous", "scopes.POST", "x"]), st.text(max_size=12), max_size=3
    ),
)
def test_parse_never_raises_anything_but_requirement_error(metadata: object, extensions: dict[str, str]) -> None:
    """Arbitrary metadata either parses or raises RequirementError; nothing else escapes."""
    spec = metadata if isinstance(metadata, dict) else {"scopes": metadata}
    try:
        result: object = parse(spec, extensions)
    except RequirementError as exc:
        result = exc
    assert isinstance(result, Requirement | RequirementError)


# ---- the HTTP transport's requirement header (JSON, the route metadata schema) ----


def test_requirement_header_is_the_route_metadata_schema() -> None:
    resolver = Resolver()
    requirement = resolver.resolve_json('{"scopes": "orders:read", "methods": {"POST": {"scopes": "orders:write"}}}')
    assert requirement.for_method("GET").alternatives == (frozenset({"orders:read"}),)
    assert requirement.for_method("POST").alternatives == (frozenset({"orders:write"}),)
    assert resolver.resolve_json('{"anonymous": true}').for_method("GET").anonymous
    assert resolver.resolve_json(None) is DEFAULT and resolver.resolve_json("{}") is DEFAULT


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '["orders:read"]',
        '"orders:read"',
        '{"scope": "orders:read"}',
        '{"scopes": 1}',
        '{"anonymous": true, "scopes": "a"}',
        '{"scopes": "a"},{"anonymous": true}',  # two headers, joined: never the second one alone
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["text", "list", "string", "typo", "number", "anonymous-and-scopes", "repeated", "deep"],
)
def test_an_invalid_requirement_header_is_refused_every_time(value: str) -> None:
    """Anything but a valid JSON object in the schema is a RequirementError (route_invalid), also
    when asked again (the cached failure)."""
    resolver = Resolver()
    for _ in range(2):
        with pytest.raises(RequirementError):
            resolver.resolve_json(value)


# ---- Envoy Gateway route metadata (namespace envoy-gateway) -----------------------------------


def _gateway(annotations: dict, kind: str = "HTTPRoute") -> dict:
    """Envoy Gateway's route metadata: resources[] with the gateway.envoyproxy.io/ prefix removed."""
    return {"resources": [{"kind": kind, "name": "orders", "namespace": "shop", "annotations": annotations}]}


def test_gateway_annotations_are_the_extension_keys() -> None:
    """native-iam-scopes / -any-of / -anonymous and .METHOD suffixes, like context_extensions."""
    req = parse(
        None,
        None,
        _gateway(
            {
                "native-iam-scopes": "orders:read",
                "native-iam-any-of.DELETE": "orders:admin | orders:delete orders:write",
                "native-iam-anonymous.OPTIONS": "true",
                "team": "shop",  # somebody else's annotation: ignored
            }
        ),
    )
    assert req.for_method("GET").alternatives == (frozenset({"orders:read"}),)
    assert req.for_method("OPTIONS").anonymous
    assert set(req.for_method("DELETE").alternatives) == {
        frozenset({"orders:admin"}),
        frozenset({"orders:delete", "orders:write"}),
    }


def test_gateway_without_our_annotations_says_nothing() -> None:
    """A route with only other annotations (or none) gets the default requirement."""
    assert parse(None, None, _gateway({"foo": "bar"})) is DEFAULT
    assert parse(None, None, {"resources": [{"kind": "HTTPRoute", "name": "x"}]}) is DEFAULT


@pytest.mark.parametrize(
    "gateway",
    [
        _gateway({"native-iam-scope": "typo"}),
        _gateway({"native-iam-anonymous": "true", "native-iam-scopes": "a"}),
        _gateway({"native-iam-scopes.get": "a"}),
        {"resources": "not a list"},
    ],
)
def test_invalid_gateway_annotations_make_the_route_invalid(gateway: dict) -> None:
    """A typo in one of our annotations is a configuration error, not silently the default."""
    with pytest.raises(RequirementError):
        parse(None, None, gateway)


def test_every_gateway_resource_with_our_annotations_applies() -> None:
    """Two resources carrying requirements: both must hold."""
    gateway = {
        "resources": [
            *_gateway({"native-iam-scopes": "a"})["resources"],
            *_gateway({"native-iam-scopes": "b"})["resources"],
        ]
    }
    assert parse(None, None, gateway).for_method("GET").alternatives == (frozenset({"a", "b"}),)


def test_resolver_reads_the_envoy_gateway_namespace() -> None:
    """Through a CheckRequest: filter_metadata["envoy-gateway"] with annotations."""
    request = _request()
    s = struct_pb2.Struct()
    s.update(_gateway({"native-iam-scopes": "orders:read"}))
    request.attributes.route_metadata_context.filter_metadata["envoy-gateway"].CopyFrom(s)
    assert Resolver().resolve(request.attributes).for_method("GET").alternatives == (frozenset({"orders:read"}),)


# ---- with a route table: precedence -----------------------------------------------------------


TABLE = route_table_file.parse(
    "routes:\n"
    "  - match: {prefix: /orders}\n    require: {scopes: orders:read}\n"
    "  - match: {path: /public}\n    require: {anonymous: true}\n"
    "  - match: {path: /admin, methods: [POST]}\n    require: {scopes: admin}\n"
)


def _tabled(
    path: str, method: str = "GET", metadata: dict | None = None, extensions: dict | None = None
) -> Requirement:
    request = _request(metadata, extensions)
    http = request.attributes.request.http
    http.host, http.method, http.path = "svc.local:8000", method, path
    return Resolver(lambda: TABLE).resolve(request.attributes)


def test_table_alone_decides_without_route_metadata() -> None:
    """No route metadata at all: the matching table rule is the requirement."""
    assert _tabled("/orders/1?x=y").for_method("GET").alternatives == (frozenset({"orders:read"}),)
    assert _tabled("/public").for_method("GET").anonymous


def test_unmatched_without_route_metadata_is_denied() -> None:
    """A configured table, no matching rule and nothing from the proxy: RouteUnmatched (deny)."""
    with pytest.raises(RouteUnmatched):
        _tabled("/elsewhere")
    with pytest.raises(RouteUnmatched):
        _tabled("/admin", "GET")  # the only /admin rule is for POST


def test_unmatched_with_route_metadata_uses_the_metadata() -> None:
    """No table rule: the proxy's requirement applies alone."""
    assert _tabled("/elsewhere", metadata={"scopes": "x"}).for_method("GET").alternatives == (frozenset({"x"}),)
    assert _tabled("/elsewhere", extensions={"anonymous": "true"}).for_method("GET").anonymous


def test_both_speak_the_stricter_of_both_applies() -> None:
    """Route metadata and a table rule: both must hold, in either direction."""
    both = _tabled("/orders", metadata={"scopes": "orders:list"}).for_method("GET")
    assert both.alternatives == (frozenset({"orders:read", "orders:list"}),)
    # anonymous in the proxy's metadata does not loosen the table's scopes ...
    assert _tabled("/orders", metadata={"anonymous": True}).for_method("GET").alternatives == (
        frozenset({"orders:read"}),
    )
    # ... nor does an anonymous table rule loosen the metadata's.
    rule = _tabled("/public", extensions={"scopes": "x"}).for_method("GET")
    assert not rule.anonymous and rule.alternatives == (frozenset({"x"}),)


def test_invalid_route_metadata_is_invalid_even_with_a_table_rule() -> None:
    """A broken proxy requirement is route_invalid, not replaced by the table."""
    with pytest.raises(RequirementError) as caught:
        _tabled("/orders", metadata={"scope": "typo"})
    assert not isinstance(caught.value, RouteUnmatched)


def test_resolve_request_is_the_same_for_other_transports() -> None:
    """resolve_request (host/method/path, no AttributeContext) gives what resolve gives."""
    resolver = Resolver(lambda: TABLE)
    assert resolver.resolve_request("svc.local", "GET", "/orders/1").for_method("GET").alternatives == (
        frozenset({"orders:read"}),
    )
    assert resolver.resolve_request("svc.local", "POST", "/admin").for_method("POST").alternatives == (
        frozenset({"admin"}),
    )
    with pytest.raises(RouteUnmatched):
        resolver.resolve_request("svc.local", "GET", "/nowhere")
    both = resolver.resolve_request("h", "GET", "/orders", metadata={"native_iam": {"scopes": "z"}})
    assert both.for_method("GET").alternatives == (frozenset({"orders:read", "z"}),)


def test_a_reloaded_table_is_used_at_once() -> None:
    """The resolver asks for the table on every request: a reload applies to the next one."""
    current = [TABLE]
    resolver = Resolver(lambda: current[0])
    assert resolver.resolve_request("h", "GET", "/orders").for_method("GET").alternatives == (
        frozenset({"orders:read"}),
    )
    current[0] = route_table_file.parse("routes:\n  - match: {prefix: /orders}\n    require: {scopes: v2}\n")
    assert resolver.resolve_request("h", "GET", "/orders").for_method("GET").alternatives == (frozenset({"v2"}),)


def test_resolve_json_is_route_metadata_combined_with_the_table() -> None:
    """A requirement carried as JSON (the HTTP transport's header) is the native_iam schema, and the
    table applies as with route metadata; bad JSON is an invalid route, never the default."""
    resolver = Resolver(lambda: TABLE)
    both = resolver.resolve_json('{"scopes": "z"}', "h", "GET", "/orders/1")
    assert both.for_method("GET").alternatives == (frozenset({"orders:read", "z"}),)
    assert resolver.resolve_json(None, "h", "GET", "/orders/1").for_method("GET").alternatives == (
        frozenset({"orders:read"}),
    )
    with pytest.raises(RouteUnmatched):
        resolver.resolve_json(None, "h", "GET", "/nowhere")
    assert resolver.resolve_json('{"anonymous": true}', "h", "GET", "/nowhere").for_method("GET").anonymous
    for bad in ('{"scope": "x"}', "[1]", "{not json", '"x"'):
        with pytest.raises(RequirementError) as caught:
            resolver.resolve_json(bad, "h", "GET", "/orders/1")
        assert not isinstance(caught.value, RouteUnmatched)
    assert Resolver().resolve_json(None) is DEFAULT
