"""Property tests over the token service's own token parser (token_service/tokens.py).

``TokenCodec.verify`` is what CheckAccess, the refresh grant, introspection and the admin API
trust. Over arbitrary input and random edits of a genuine token it raises only TokenInvalid or
TokenExpired, and whatever it accepts carries exactly the genuine token's claims. 100,000-example
variants are marked slow.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.token_service.test_tokens import _codec, _sign
from token_service.errors import TokenExpired, TokenInvalid

from .test_properties import _apply, _edits

FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck))
# 100,000 examples take minutes, past the suite's 120 s per-test timeout.
SLOW_TIMEOUT = pytest.mark.timeout(1800)
CODECS = {alg: _codec(alg) for alg in ("ES256", "HS256")}
GENUINE = {alg: _sign(codec, ttl=30 * 24 * 3600) for alg, codec in CODECS.items()}
CLAIMS = {alg: CODECS[alg].verify(token) for alg, token in GENUINE.items()}

_garbage = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=80), max_size=5
    ).map(".".join),
)


def _verify(alg: str, token: str) -> str:
    """'refused' or 'accepted'; any other exception fails the test."""
    try:
        claims = CODECS[alg].verify(token)
    except (TokenInvalid, TokenExpired):
        return "refused"
    assert claims == CLAIMS[alg], f"accepted {token!r} with other claims"
    return "accepted"


def _edited_property(alg: str, edits: list[tuple[str, int, str]]) -> None:
    outcome = _verify(alg, _apply(GENUINE[alg], edits))
    event(outcome)


def _garbage_property(alg: str, value: str) -> None:
    assert _verify(alg, value) == "refused"


@FAST
@given(alg=st.sampled_from(sorted(CODECS)), edits=_edits)
def test_edited_token_is_refused_or_the_same_token(alg: str, edits: list[tuple[str, int, str]]) -> None:
    """Random edits of a genuine token raise only TokenInvalid/TokenExpired, or verify to the very same claims."""
    _edited_property(alg, edits)


@pytest.mark.slow
@SLOW_TIMEOUT
@SLOW
@given(alg=st.sampled_from(sorted(CODECS)), edits=_edits)
def test_edited_token_is_refused_or_the_same_token_slow(alg: str, edits: list[tuple[str, int, str]]) -> None:
    """The same property over 100,000 examples."""
    _edited_property(alg, edits)


@FAST
@given(alg=st.sampled_from(sorted(CODECS)), value=_garbage)
def test_arbitrary_input_is_token_invalid(alg: str, value: str) -> None:
    """Arbitrary text (and token-alphabet noise in segments) is refused with the seed's statuses only."""
    _garbage_property(alg, value)


@pytest.mark.slow
@SLOW_TIMEOUT
@SLOW
@given(alg=st.sampled_from(sorted(CODECS)), value=_garbage)
def test_arbitrary_input_is_token_invalid_slow(alg: str, value: str) -> None:
    """The same property over 100,000 examples."""
    _garbage_property(alg, value)
