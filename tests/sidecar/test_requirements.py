"""sidecar/requirements.py: every form of route requirement, from metadata and context_extensions."""

from __future__ import annotations

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.requirements import DEFAULT, Requirement, RequirementError, Resolver, Rule, parse


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
