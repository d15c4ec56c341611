"""A stand-in for a Kubernetes cluster's service-account issuer (kube-apiserver), on 127.0.0.1.

Real Kubernetes is not available to the tests; this serves what a cluster serves to relying
parties and mints tokens in the shape kube-apiserver gives projected service-account tokens::

    GET /.well-known/openid-configuration   {"issuer", "jwks_uri", "response_types_supported",
                                             "subject_types_supported",
                                             "id_token_signing_alg_values_supported"}
    GET /openid/v1/jwks                     {"keys": [{"use": "sig", "kty": "RSA", "kid", "alg",
                                             "n", "e"}]}

    header  {"alg": "RS256", "kid": "<key id>"}             (no "typ", as kube-apiserver)
    claims  {"aud": ["<audience>"], "exp", "iat", "nbf", "iss", "jti": "<uuid>",
             "kubernetes.io": {"namespace", "node": {"name", "uid"}, "pod": {"name", "uid"},
                               "serviceaccount": {"name", "uid"}},
             "sub": "system:serviceaccount:<namespace>:<name>"}

Usage (also from 13C's sidecar tests and end-to-end tests)::

    with KubernetesIssuer() as cluster:
        trust = cluster.trust_file(tmp_path, audience="http://token-service.test",
                                   service_accounts={"system:serviceaccount:shop:checkout": "checkout"})
        token = cluster.token("shop", "checkout", audience="http://token-service.test")

``overrides`` on :meth:`KubernetesIssuer.token` change or (with ``None``) drop any claim, and
``key``/``alg``/``kid`` sign with something else, so the negative tests need no JWT code of their own.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["KubernetesIssuer", "SigningKey", "new_key"]

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"


@dataclass(frozen=True)
class SigningKey:
    """A private key, its ``kid`` and algorithm (RS256 or ES256, as kube-apiserver signs)."""

    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {"use": "sig", "kid": self.kid, "alg": self.alg, **public}


def new_key(alg: str = "RS256", kid: str | None = None) -> SigningKey:
    private = rsa.generate_private_key(65537, 2048) if alg == "RS256" else ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid or uuid.uuid4().hex[:16], alg, private)


@dataclass
class KubernetesIssuer:
    """The issuer; a context manager that serves its discovery document and JWKS."""

    alg: str = "RS256"
    keys: list[SigningKey] = field(default_factory=list)
    #: Requests served, by path (tests assert how often the token service fetched).
    hits: Counter[str] = field(default_factory=Counter)
    #: Set to make every request fail with 503 (an unreachable API server).
    down: bool = False
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys.append(new_key(self.alg))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """``iss`` of its tokens (the discovery document's URL prefix, as OIDC discovery requires)."""
        return self.url

    @property
    def signing_key(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    def rotate(self, *, keep_old: bool = True) -> SigningKey:
        """A new signing key (the old one stays in the JWKS unless ``keep_old`` is False)."""
        key = new_key(self.alg)
        self.keys[:] = [*(self.keys if keep_old else []), key]
        return key

    def token(
        self,
        namespace: str = "default",
        name: str = "default",
        *,
        audience: str | list[str] = "native-iam",
        lifetime_s: int = 3600,
        now: float | None = None,
        key: SigningKey | None = None,
        alg: str | None = None,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        """A projected service-account token for ``namespace``/``name``, as kube-apiserver mints it.

        ``overrides`` replace claims (``None`` removes one); ``alg``/``kid``/``headers`` change the
        header; ``key`` signs with another key (e.g. one not in the JWKS).
        """
        iat = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "aud": [audience] if isinstance(audience, str) else list(audience),
            "exp": iat + lifetime_s,
            "iat": iat,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "node-1", "uid": str(uuid.uuid4())},
                "pod": {"name": f"{name}-7d9c6b7f4-x2x9k", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": name, "uid": str(uuid.uuid4())},
            },
            "nbf": iat,
            "sub": f"system:serviceaccount:{namespace}:{name}",
        }
        for claim, value in overrides.items():
            claim = claim.replace("kubernetes_io", "kubernetes.io")
            if value is None:
                claims.pop(claim, None)
            else:
                claims[claim] = value
        signer = key or self.signing_key
        header = {"kid": kid if kid is not None else signer.kid, **(headers or {})}
        return jwt.encode(claims, signer.private, algorithm=alg or signer.alg, headers=header)

    def trust_file(
        self, directory: Path, *, audience: str, service_accounts: Mapping[str, str], **options: Any
    ) -> Path:
        """Write a NATIVE_IAM_CLUSTER_ISSUERS_FILE trusting this issuer (OIDC discovery); its path."""
        entry = {"issuer": self.issuer, "audience": audience, "service_accounts": dict(service_accounts), **options}
        path = directory / f"cluster-issuers-{self.port}.json"
        path.write_text(json.dumps({"issuers": [entry]}), "utf-8")
        return path

    def __enter__(self) -> KubernetesIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits[self.path] += 1
                if issuer.down:
                    return self._send(503, {"error": "unavailable"})
                if self.path == DISCOVERY_PATH:
                    return self._send(
                        200,
                        {
                            "issuer": issuer.issuer,
                            "jwks_uri": f"{issuer.url}{JWKS_PATH}",
                            "response_types_supported": ["id_token"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": [issuer.alg],
                        },
                    )
                if self.path == JWKS_PATH:
                    return self._send(200, issuer.jwks())
                return self._send(404, {"error": "not found"})

            def _send(self, status: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name="k8s-issuer", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
