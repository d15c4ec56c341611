"""Every Envoy configuration the project ships routes on the path the workload will see.

Envoy picks the route, and so the requirement, from the request path; the workload picks its
handler from the same path after decoding it the way web frameworks do. When the two readings
differ (``/%61dmin``, ``/public/../admin``, ``/public/..%2fadmin``, ``/ADMIN``), a client reaches a
handler through a route that does not protect it. Here each shipped config (examples/envoy, the
demo's, the Kubernetes example workload's) runs in a real Envoy with the real sidecar in front of
a :class:`Framework` upstream, and a family of path tricks must never reach a handler that the
caller's credentials do not open. Identity headers spelled with underscores must not reach it
either (many frameworks read ``x_native_iam_identity`` as ``x-native-iam-identity``).
"""

from __future__ import annotations

import json
import posixpath
import re
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from string import Template
from typing import Any

import pytest
import yaml

from native_iam import demo
from sidecar.decision import Deny, Principal, Reason
from sidecar.ext_authz_grpc import encode, parse_response
from sidecar.settings import Settings
from sidecar.verdict import Verdicts

from . import _stack
from ._feed import Issuer
from .test_envoy import envoy_bin, module_feed, sidecar_env

pytestmark = pytest.mark.envoy
__all__ = ["envoy_bin", "module_feed"]

K8S = _stack.ROOT / "deploy" / "k8s" / "components" / "example-workload" / "envoy.yaml"
DEMO = _stack.ROOT / "native_iam" / "demo_envoy.yaml"


def framework_path(target: str) -> str:
    """The path a lenient web framework routes on: ";parameters" dropped from each segment (servlet
    containers), %-escapes decoded once, "\\" read as "/", dot-segments resolved, repeated slashes merged,
    case ignored."""
    raw = "/".join(segment.partition(";")[0] for segment in urllib.parse.urlsplit(target).path.split("/"))
    path = urllib.parse.unquote(raw).replace("\\", "/")
    path = posixpath.normpath("/" + path)
    return re.sub("/+", "/", path).lower()


class Framework(BaseHTTPRequestHandler):
    """Answers 200 naming the handler the request reached (the first segment of :func:`framework_path`), the
    method as a lenient framework reads it (any case) and the headers it got."""

    def _answer(self) -> None:
        path = framework_path(self.path)
        handler = path.split("/")[1]
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = json.dumps({"handler": handler, "method": self.command.upper(), "headers": headers}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Reply:
    status: int
    served: dict[str, Any] | None  # the Framework's answer when the request reached the workload


def send(port: int, method: str, target: str, headers: Sequence[tuple[str, str]] = ()) -> Reply:
    """One HTTP/1.1 request with the request line exactly as given (no client-side path cleanup)."""
    lines = [f"{method} {target} HTTP/1.1", "host: workload", *(f"{k}: {v}" for k, v in headers)]
    lines += ["content-length: 0", "connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1"))
        head, body = _read_response(sock)
    status = int(head.split(b" ", 2)[1])
    try:
        served = json.loads(body)
    except ValueError:
        served = None
    return Reply(status, served if isinstance(served, dict) and "handler" in served else None)


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Status line + headers, and the body read by its content-length (Envoy delays closing a
    connection after a 400 by a second; waiting for EOF would make every refusal that slow)."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while (length is None or len(body) < int(length.group(1))) and (chunk := sock.recv(65536)):
        body += chunk
    return head, body


# ---- the shipped configurations, rendered for this test's ports ----


def _example(tmp: Path, authz: int, upstream: int) -> tuple[Path, int]:
    listen = _stack.free_port()
    config = _stack.local_envoy_config(
        yaml.safe_load(_stack.EXAMPLE.read_text()),
        {"ingress": listen},
        {"native_iam_sidecar": authz, "workload": upstream},
    )
    path = tmp / "example.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, listen


def _example_http(tmp: Path, authz_http: int, upstream: int) -> tuple[Path, int]:
    listen = _stack.free_port()
    text = _stack.EXAMPLE_HTTP.read_text().replace("127.0.0.1:9193", f"127.0.0.1:{authz_http}")
    config = _stack.local_envoy_config(
        yaml.safe_load(text), {"ingress": listen}, {"native_iam_sidecar_http": authz_http, "workload": upstream}
    )
    path = tmp / "example-http.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, listen


def _demo(tmp: Path, authz: int, upstream: int) -> tuple[Path, int]:
    ports = {"envoy": _stack.free_port(), "envoy_admin": _stack.free_port(), "authz": authz, "upstream": upstream}
    path = tmp / "demo.yaml"
    path.write_text(demo.envoy_config(ports, tmp / "demo-access.log"))
    return path, ports["envoy"]


def _k8s(tmp: Path, authz: int, upstream: int) -> tuple[Path, int]:
    ports = {"ingress": _stack.free_port(), "ops": _stack.free_port(), "admin": _stack.free_port()}
    config = _stack.local_envoy_config(
        yaml.safe_load(K8S.read_text()), ports, {"native_iam_authz": authz, "app": upstream}
    )
    path = tmp / "k8s.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, ports["ingress"]


@dataclass(frozen=True)
class Shipped:
    name: str
    render: Callable[[Path, int, int], tuple[Path, int]]
    anonymous: frozenset[str]  # handlers a caller without a token may reach
    reader_denied: Callable[[str, str], bool]  # (method, handler) an orders:read token must not reach
    http: bool = False  # calls the sidecar's HTTP transport (else gRPC)

    @property
    def public(self) -> str:
        return sorted(self.anonymous)[0]


SHIPPED = [
    Shipped(
        "examples/envoy",
        _example,
        frozenset({"healthz", "docs"}),
        lambda m, h: h in {"admin", "reports"} or (h == "orders" and m in {"POST", "DELETE"}),
    ),
    Shipped(
        "examples/envoy (http)",
        _example_http,
        frozenset({"healthz", "docs"}),
        lambda m, h: h in {"admin", "reports"} or (h == "orders" and m in {"POST", "DELETE"}),
        http=True,
    ),
    Shipped("demo", _demo, frozenset({"public"}), lambda m, h: h == "admin" or (h == "orders" and m == "POST")),
    Shipped("kubernetes", _k8s, frozenset({"public"}), lambda m, h: h == "orders" and m != "GET"),
]


@dataclass(frozen=True)
class Gateway:
    shipped: Shipped
    port: int
    config: Path


@pytest.fixture(scope="module")
def authz_ports(module_feed: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    with _stack.sidecar(tmp_path_factory.mktemp("sidecar"), sidecar_env(module_feed)) as ports:
        yield ports


@pytest.fixture(scope="module", params=SHIPPED, ids=lambda s: s.name)
def gateway(
    request: pytest.FixtureRequest,
    envoy_bin: str,
    authz_ports: dict[str, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    shipped: Shipped = request.param
    tmp = tmp_path_factory.mktemp(re.sub(r"\W+", "-", shipped.name))
    with _stack.echo_upstream(Framework) as upstream:
        config, listen = shipped.render(tmp, authz_ports["authz_http" if shipped.http else "authz"], upstream)
        with _stack.envoy(envoy_bin, config, listen):
            gateway = Gateway(shipped, listen, config)
            # The Kubernetes config health-checks its clusters: wait until a request gets through.
            deadline = time.monotonic() + 20
            while send(listen, "GET", f"/{shipped.public}/ready").served is None:
                assert time.monotonic() < deadline, "the anonymous route never answered"
                time.sleep(0.1)
            yield gateway


def _hide(segment: str) -> list[str]:
    """Spellings of ``/segment`` that a framework reads as ``/segment``."""
    first = f"%{ord(segment[0]):02x}" + segment[1:]
    return [
        f"/{first}",
        f"/{first.upper()}",
        "/" + "".join(f"%{ord(c):02X}" for c in segment),
        f"/{segment.upper()}",
        f"/{segment.capitalize()}",
        f"//{segment}",
        f"/./{segment}",
        f"/%2e/{segment}",
        f"/x/../{segment}",
        f"/x/%2e%2e/{segment}",
        f"/x/..%2f{segment}",
        f"/x%2f..%2f{segment}",
        f"/x/..%5c{segment}",
        f"/x\\..\\{segment}",
        f"/%2f{segment}",
        f"/%5c{segment}",
        f"/x/..;/{segment}",
        f"/x;/../{segment}",
        f"/x/%2e%2e;/{segment}",
        f"/;/{segment}",
        f"/;x/{segment}",
        f"/x/.;/{segment}",
        f"/x/%252e%252e/{segment}",
        f"/{segment}.",
        f"/{segment}%2e",
        f"/{segment}%2f",
        f"/{segment}/",
        f"http://workload/x/../{segment}",
    ]


def anonymous_tricks(public: str) -> list[tuple[str, str]]:
    """Requests that start on an anonymous route and try to end on a protected handler."""
    tricks = []
    for method, target in (("GET", "admin"), ("POST", "orders"), ("GET", "reports")):
        for spelled in (target, target.upper(), "%" + f"{ord(target[0]):02x}" + target[1:]):
            for template in (
                "/{p}/../{t}",
                "/{p}/%2e%2e/{t}",
                "/{p}/%2E%2E/{t}",
                "/{p}/.%2e/{t}",
                "/{p}/%2e./{t}",
                "/{p}/..%2f{t}",
                "/{p}/..%2F{t}",
                "/{p}%2f..%2f{t}",
                "/{p}/..%5c{t}",
                "/{p}\\..\\{t}",
                "/{p}/./../{t}",
                "/{p}//../{t}",
                "/{p}/x/../../{t}",
                "/{p};/../{t}",
                "/{p}/..;/{t}",
                "/{p}/%2e%2e;/{t}",
                "/{p}/%2e%2e%3b/{t}",
                "/{p}/.%2e;x/{t}",
                "/{p}%00/../{t}",
                "/{p}/..%00/{t}",
                "/{p}/%252e%252e/{t}",
                "/{p}/..%252f{t}",
                "/{p}{t}",
                "/{p}-{t}",
                "/{p}/../{t}?x=1",
                "/{p}?/../{t}",
                "http://workload/{p}/../{t}",
                "/%" + f"{ord(public[0]):02x}" + public[1:] + "/../{t}",
            ):
                tricks.append((method, template.format(p=public, t=spelled)))
    return tricks


def reader_tricks() -> list[tuple[str, str]]:
    """Requests with an orders:read token aimed at handlers that need more."""
    return [(m, t) for m, seg in (("GET", "admin"), ("POST", "orders"), ("GET", "reports")) for t in _hide(seg)] + [
        ("post", "/orders"),
        ("Post", "/orders"),
    ]


def _violations(
    gateway: Gateway,
    tricks: list[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
    may: Callable[[str, str], bool],
) -> list[str]:
    """Each trick that reached a handler ``may(method, handler)`` does not allow."""
    found = []
    for method, target in tricks:
        reply = send(gateway.port, method, target, headers)
        if reply.served is not None and not may(reply.served["method"], reply.served["handler"]):
            found.append(f"{method} {target} -> {reply.served['method']} {reply.served['handler']} ({reply.status})")
    return found


def test_no_path_trick_takes_an_anonymous_caller_past_the_route(gateway: Gateway) -> None:
    """Without a token, only the anonymous handlers are reachable, however the path is spelled."""
    shipped = gateway.shipped
    control = send(gateway.port, "GET", f"/{shipped.public}/page")
    assert control.served is not None and control.served["handler"] == shipped.public
    assert send(gateway.port, "GET", "/admin").served is None
    found = _violations(gateway, anonymous_tricks(shipped.public), [], lambda m, h: h in shipped.anonymous)
    assert not found, "\n".join(found)


def test_no_path_trick_lifts_an_orders_read_token_to_another_handler(gateway: Gateway, issuer: Issuer) -> None:
    """An orders:read token reaches GET /orders, and no spelling of /admin, /reports or POST /orders that the
    route would refuse."""
    auth = [("authorization", f"Bearer {issuer.mint(scope='orders:read')}")]
    control = send(gateway.port, "GET", "/orders/1", auth)
    assert control.served is not None and control.served["handler"] == "orders"
    assert send(gateway.port, "POST", "/orders", auth).status == 403
    denied = gateway.shipped.reader_denied
    found = _violations(gateway, reader_tricks(), auth, lambda m, h: not denied(m, h))
    assert not found, "\n".join(found)


FORGED = ["x_native_iam_identity", "X_Native_Iam_Identity", "x-native-iam-identity", "x_native_iam_scopes"]


@pytest.mark.parametrize("name", FORGED)
@pytest.mark.parametrize("route", ["anonymous", "protected"])
def test_no_spelling_of_an_identity_header_reaches_the_workload(
    gateway: Gateway, issuer: Issuer, route: str, name: str
) -> None:
    """A client-sent identity header, with dashes or underscores, is refused or removed: the workload only ever
    sees the sidecar's value."""
    if route == "anonymous":
        target, auth = f"/{gateway.shipped.public}/page", []
    else:
        target, auth = "/orders/1", [("authorization", f"Bearer {issuer.mint('alice', scope='orders:read')}")]
    reply = send(gateway.port, "GET", target, [*auth, (name, "root orders:admin")])
    if reply.served is None:
        assert reply.status == 400, reply
        return
    # Compare spellings as a framework would: "_" and "-" alike.
    forwarded = [(k.replace("_", "-"), v) for k, v in reply.served["headers"].items()]
    for header, value in forwarded:
        if header.startswith("x-native-iam-"):
            assert "root" not in value and "orders:admin" not in value, (header, value)
    assert any(header == "x-native-iam-identity" for header, _ in forwarded) == (route == "protected")


# ---- every configuration the project ships or prints is hardened alike ----

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ALL_CONFIGS = [
    _stack.EXAMPLE,
    _stack.EXAMPLE_HTTP,
    DEMO,
    K8S,
    *sorted((_stack.ROOT / "bench" / "envoy").glob("*.yaml")),
]


def _connection_managers(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("@type") == HCM:
            yield node
        for value in node.values():
            yield from _connection_managers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _connection_managers(item)


def _rendered(path: Path, jwks: str) -> str:
    """The file with its string.Template placeholders filled with harmless values (demo, bench)."""
    placeholders = {"access_log": "/dev/null", "jwt_cache": "", "jwks_json": jwks, "authz_streams": "100"}
    text = Template(path.read_text()).safe_substitute(placeholders)
    return re.sub(r"port_value: \$\w+", "port_value: 1", text)


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(_stack.ROOT)))
def test_every_shipped_config_normalises_paths_and_refuses_underscore_headers(
    path: Path, tmp_path: Path, envoy_bin: str, issuer: Issuer
) -> None:
    """Every HTTP connection manager the project ships routes on the normalised path (normalize_path,
    merge_slashes, escaped slashes refused) and refuses header names with underscores; Envoy accepts the file."""
    text = _rendered(path, issuer.jwks_json())
    managers = list(_connection_managers(yaml.safe_load(text)))
    assert managers
    for hcm in managers:
        assert hcm.get("normalize_path") is True and hcm.get("merge_slashes") is True, hcm["stat_prefix"]
        assert hcm.get("path_with_escaped_slashes_action") == "REJECT_REQUEST", hcm["stat_prefix"]
        options = hcm.get("common_http_protocol_options", {})
        assert options.get("headers_with_underscores_action") == "REJECT_REQUEST", hcm["stat_prefix"]
    config = tmp_path / path.name
    config.write_text(text)
    result = subprocess.run(
        [envoy_bin, "--mode", "validate", "-c", str(config), "-l", "error"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- behind an Envoy that does not normalise, the sidecar still refuses such paths ----

_HARDENING = ("normalize_path", "merge_slashes", "path_with_escaped_slashes_action", "common_http_protocol_options")


def _unhardened(render: Callable[[Path, int, int], tuple[Path, int]]) -> Callable[[Path, int, int], tuple[Path, int]]:
    """An example config as copied before the path settings existed."""

    def unhardened(tmp: Path, authz: int, upstream: int) -> tuple[Path, int]:
        path, listen = render(tmp, authz, upstream)
        config = yaml.safe_load(path.read_text())
        for hcm in _connection_managers(config):
            for key in _HARDENING:
                hcm.pop(key)
        path.write_text(yaml.safe_dump(config))
        return path, listen

    return unhardened


UNHARDENED = [
    Shipped("unhardened-example", _unhardened(_example), SHIPPED[0].anonymous, SHIPPED[0].reader_denied),
    Shipped(
        "unhardened-example-http", _unhardened(_example_http), SHIPPED[1].anonymous, SHIPPED[1].reader_denied, http=True
    ),
]
_ENCODED_OR_DOTTED = re.compile(r"%|\\|//|/\.")


@pytest.mark.parametrize("gateway", UNHARDENED, ids=lambda s: s.name, indirect=True)
def test_without_envoy_normalisation_the_sidecar_refuses_encoded_and_dotted_paths(
    gateway: Gateway, issuer: Issuer
) -> None:
    """Defence in depth: with the listener's path settings removed, every trick that relies on encoding, dots,
    backslashes or doubled slashes is refused by the sidecar (400) on each route that consults it."""
    auth = [("authorization", f"Bearer {issuer.mint(scope='orders:read')}")]
    anonymous = [t for t in anonymous_tricks(gateway.shipped.public) if _ENCODED_OR_DOTTED.search(t[1])]
    reader = [t for t in reader_tricks() if _ENCODED_OR_DOTTED.search(t[1])]
    found = _violations(gateway, anonymous, [], lambda m, h: h in gateway.shipped.anonymous)
    found += _violations(gateway, reader, auth, lambda m, h: not gateway.shipped.reader_denied(m, h))
    assert not found, "\n".join(found)
    refused = send(gateway.port, "GET", f"/{gateway.shipped.public}/../admin")
    assert refused.status == 400 and refused.served is None


# ---- the demo's access log reads what the sidecar emits ----

_METADATA = re.compile(r"%DYNAMIC_METADATA\(envoy\.filters\.http\.ext_authz:([^):]+)\)%")


def _emitted_keys() -> set[str]:
    """The dynamic-metadata keys the sidecar puts in an allow and in a deny."""
    verdicts = Verdicts(Settings(issuer="http://issuer.test", audiences=("native-iam",), realm="test"))
    principal = Principal("alice", "shop", frozenset({"orders:read"}), "jti-1", "k1", "c", 0.0, 1.0)
    allow = parse_response(encode(verdicts.allow(principal)))
    deny = parse_response(encode(verdicts.deny(Deny(Reason.REVOKED, "revoked", jti="jti-1"))))
    return set(allow.dynamic_metadata.fields) | set(deny.dynamic_metadata.fields)


def test_demo_access_log_reads_keys_the_sidecar_emits() -> None:
    """Every ext_authz dynamic-metadata key in the demo's access-log format is one the sidecar sets."""
    used = set(_METADATA.findall(DEMO.read_text()))
    assert "identity" in used and used <= _emitted_keys(), (used, _emitted_keys())


@pytest.mark.parametrize("gateway", [s for s in SHIPPED if s.name == "demo"], ids=["demo"], indirect=True)
def test_demo_access_log_names_the_caller(gateway: Gateway, issuer: Issuer) -> None:
    """Through the demo's Envoy, an allowed request's access-log line carries the caller's identity and jti."""
    token = issuer.mint("access-log-alice", scope="orders:read", jti="access-log-jti")
    assert send(gateway.port, "GET", "/orders/7", [("authorization", f"Bearer {token}")]).status == 200
    log = gateway.config.parent / "demo-access.log"
    deadline = time.monotonic() + 10
    while "access-log-jti" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "no access-log line for the request"
        time.sleep(0.1)
    (line,) = [line for line in log.read_text().splitlines() if "access-log-jti" in line]
    assert "identity=access-log-alice" in line, line


# ---- over the HTTP transport, only Envoy's configuration says what a route requires ----


def _http_services(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "http_service" in node:
            yield node["http_service"]
        for value in node.values():
            yield from _http_services(value)
    elif isinstance(node, list):
        for item in node:
            yield from _http_services(item)


def _matches(pattern: dict[str, Any], name: str) -> bool:
    if "exact" in pattern:
        return bool(pattern["exact"].lower() == name)
    if "prefix" in pattern:
        return name.startswith(pattern["prefix"].lower())
    if "suffix" in pattern:
        return name.endswith(pattern["suffix"].lower())
    if "contains" in pattern:
        return pattern["contains"].lower() in name
    return True  # a regex or anything else: assume it may match


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(_stack.ROOT)))
def test_every_http_service_sets_the_requirement_and_no_client_can(path: Path, issuer: Issuer) -> None:
    """Every http_service (the filter's and each route's override) sets x-native-iam-requirement itself
    (headers_to_add replaces a client's), and no allowed_headers pattern lets a client's through."""
    from sidecar.ext_authz_http import REQUIREMENT_HEADER

    config = yaml.safe_load(_rendered(path, issuer.jwks_json()))
    for service in _http_services(config):
        added = service.get("authorization_request", {}).get("headers_to_add", [])
        assert [h["key"] for h in added].count(REQUIREMENT_HEADER) == 1, service
        json.loads(next(h["value"] for h in added if h["key"] == REQUIREMENT_HEADER))
        for allowed in (service.get("authorization_request", {}).get("allowed_headers", {}),):
            assert not any(_matches(p, REQUIREMENT_HEADER) for p in allowed.get("patterns", []))
    for hcm in _connection_managers(config):
        for f in hcm.get("http_filters", []):
            patterns = f.get("typed_config", {}).get("allowed_headers", {}).get("patterns", [])
            assert not any(_matches(p, REQUIREMENT_HEADER) for p in patterns), path
