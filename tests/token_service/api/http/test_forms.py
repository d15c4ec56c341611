"""token_service/api/http/forms.py: strict form parsing (RFC 6749 §3.1, §3.2)."""

from __future__ import annotations

import pytest

from token_service.api.http import forms as _forms
from token_service.errors import InvalidRequest


def test_parses_percent_and_plus_encoding() -> None:
    """Percent-escapes and '+' decode as application/x-www-form-urlencoded says."""
    form = _forms.parse_body(b"username=a+b&password=p%26%3D%C3%A9")
    assert form.get("username") == "a b"
    assert form.get("password") == "p&=é"


def test_repeated_parameter_is_invalid_request() -> None:
    """A parameter sent twice is refused (RFC 6749 §3.2), even with equal values."""
    with pytest.raises(InvalidRequest, match="more than once: scope"):
        _forms.parse_body(b"scope=a&scope=a")


def test_empty_value_counts_as_omitted() -> None:
    """A parameter without a value is treated as omitted (RFC 6749 §3.1)."""
    form = _forms.parse_body(b"scope=&grant_type=password")
    assert form.get("scope") is None
    assert form.get("grant_type") == "password"


def test_invalid_utf8_in_escape_is_invalid_request() -> None:
    """A percent-escape that decodes to invalid UTF-8 is invalid_request, not a crash."""
    with pytest.raises(InvalidRequest, match="UTF-8"):
        _forms.parse_body(b"password=%ff%fe")


def test_invalid_utf8_raw_byte_is_invalid_request() -> None:
    """A raw non-UTF-8 byte in the body is invalid_request."""
    with pytest.raises(InvalidRequest, match="UTF-8"):
        _forms.parse_body(b"password=\xff")


def test_too_many_parameters_is_invalid_request() -> None:
    """More fields than any OAuth request has are refused before they are all decoded."""
    body = "&".join(f"p{i}=x" for i in range(_forms.MAX_FIELDS + 1)).encode()
    with pytest.raises(InvalidRequest, match="too many parameters"):
        _forms.parse_body(body)


def test_oversized_parameter_is_invalid_request() -> None:
    """A value over its per-parameter limit (password: 1024 bytes) is refused."""
    with pytest.raises(InvalidRequest, match="password exceeds 1024"):
        _forms.parse_body(b"password=" + b"x" * 1025)


def test_nul_character_is_invalid_request() -> None:
    """A NUL byte in a value is refused (it could truncate in a lower layer)."""
    with pytest.raises(InvalidRequest, match="NUL"):
        _forms.parse_body(b"username=a%00b")


def test_require_names_missing_parameter() -> None:
    """Form.require raises invalid_request naming the missing parameter."""
    with pytest.raises(InvalidRequest, match="missing parameter: username"):
        _forms.parse_body(b"grant_type=password").require("username")


def test_resource_may_repeat() -> None:
    """`resource` may be sent several times (RFC 8707 §2); the values keep their order."""
    form = _forms.parse_body(b"resource=https%3A%2F%2Fa&grant_type=password&resource=b")
    assert form.get_all("resource") == ("https://a", "b") and form.get("resource") is None
