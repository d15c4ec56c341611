"""native_iam/bearer.py: the one ``Authorization: Bearer`` parser (sidecar, /oauth2/userinfo, admin gRPC)."""

from __future__ import annotations

import pytest

from native_iam import bearer


@pytest.mark.parametrize(
    ("value", "token"),
    [("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  a.b-c_~+/==  ", "a.b-c_~+/=="), (None, None),
     ("", None), ("   ", None), ("Basic YWxpY2U6cHc=", None), (" Bearer abc", None)],
)  # fmt: skip
def test_token_or_none(value: str | None, token: str | None) -> None:
    assert bearer.token_from(value, max_bytes=100) == token


@pytest.mark.parametrize(
    "value",
    ["Bearer", "Bearer a b", "Bearer abc,Bearer abc", "Bearer a=b", "Bearer é", "Bearer a\x00", "Bearer " + "a" * 200],
    ids=["no_token", "two_tokens", "merged_duplicates", "inner_equals", "non_ascii", "nul", "too_long"],
)
def test_malformed_bearer_header(value: str) -> None:
    with pytest.raises(bearer.MalformedHeader) as raised:
        bearer.token_from(value, max_bytes=100)
    assert "aaaa" not in str(raised.value)


def test_bare_token_only_when_the_scheme_is_not_required() -> None:
    assert bearer.token_from("abc", max_bytes=100, require_scheme=False) == "abc"
    assert bearer.token_from("abc", max_bytes=100) is None  # read as another scheme: no bearer token
