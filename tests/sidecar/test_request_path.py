"""sidecar/request_path.py: which request paths the sidecar refuses as not normalised."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.request_path import problem

from .test_envoy_paths import framework_path


@pytest.mark.parametrize(
    "path",
    [
        "",  # not from Envoy's HTTP filter: nothing to judge
        "/",
        "/orders",
        "/orders/",
        "/orders/42?expand=items",
        "/.well-known/jwks.json",
        "/orders/a.b/..c/c..",
        "/files/100%25",
        "/search/a%20b",
        "/orders;v=1",
        "/orders/;",
        "/orders?next=/../admin&q=%61//x",  # the query is not examined
    ],
)
def test_normalised_paths_pass(path: str) -> None:
    """Paths Envoy's normalisation leaves as they are (reserved escapes, dots inside names, any query)."""
    assert problem(path) is None


@pytest.mark.parametrize(
    "path",
    [
        "*",
        "admin",
        "/public/../admin",
        "/public/./admin",
        "/public/..",
        "/public/.",
        "/public/..;/admin",
        "/public/.;x/admin",
        "/;/admin",
        "/;x/admin",
        "/public/;/admin",
        "/%61dmin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/%7Euser",
        "/public/..%2fadmin",
        "/public%2Fadmin",
        "/public%5cadmin",
        "/public%00",
        "/public/%252e%252e/admin",
        "/public/..%252fadmin",
        "/public\\..\\admin",
        "//admin",
        "/public//admin",
        "/public/ admin",
        "/public/\tadmin",
    ],
)
def test_paths_a_framework_would_rewrite_are_refused(path: str) -> None:
    """Dot-segments (also servlet-style "..;"), needless %-escapes, encoded slashes, double encoding, backslashes,
    empty segments, spaces and controls, and a path not starting with "/" each have a reason."""
    reason = problem(path)
    assert reason is not None and reason.startswith("the request path"), (path, reason)


_PIECES = st.sampled_from(
    ["/", ".", "..", "a", "admin", "%2e", "%2E", "%2f", "%5c", "%61", "%25", "%20", "\\", ";", "x"]
)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_PIECES, max_size=12).map(lambda parts: "/" + "".join(parts)))
def test_a_path_that_passes_reaches_the_workload_with_the_segments_envoy_routed_on(path: str) -> None:
    """For every path the sidecar accepts, a framework that decodes and normalises it sees exactly the segments
    Envoy saw (each without its ";parameters", decoded on its own): no trick moves a request from one route's
    prefix to another's."""
    if problem(path) is not None:
        return
    envoy_segments = [urllib.parse.unquote(s.partition(";")[0]).lower() for s in path.split("/")[1:]]
    framework_segments = framework_path(path).split("/")[1:]
    if envoy_segments[-1:] == [""] and len(envoy_segments) > 1:
        envoy_segments = envoy_segments[:-1]  # normpath drops a trailing slash; routing on it is unaffected
    assert framework_segments == (envoy_segments or [""]), path
