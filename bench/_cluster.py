"""A stand-in Kubernetes cluster for the benchmarks: one RS256 key written as a JWK Set file, the
token service's trust file for it, and one projected service-account token shaped as
kube-apiserver mints them (the suite's tests/k8s_issuer.py serves the same over HTTP; the
benchmark reads the keys from a file so nothing but the token service runs)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["ISSUER", "NAMESPACE", "SERVICE_ACCOUNT", "Cluster"]

ISSUER = "https://kubernetes.default.svc.cluster.local"
NAMESPACE = "shop"
SERVICE_ACCOUNT = "frontend"
_KID = "bench-cluster-key"


class Cluster:
    def __init__(self, directory: Path, *, audience: str, client_id: str) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._audience = audience
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        jwks = directory / "cluster-jwks.json"
        jwks.write_text(json.dumps({"keys": [{**jwk, "kid": _KID, "alg": "RS256", "use": "sig"}]}), "utf-8")
        #: NATIVE_IAM_CLUSTER_ISSUERS_FILE: this cluster's service account shop/frontend → ``client_id``.
        self.trust_file = directory / "cluster-issuers.json"
        subject = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
        entry = {
            "issuer": ISSUER,
            "jwks_file": jwks.name,
            "audience": audience,
            "service_accounts": {subject: client_id},
        }
        self.trust_file.write_text(json.dumps({"issuers": [entry]}), "utf-8")

    def token(self, lifetime_s: int = 3600) -> str:
        """A projected service-account token (reusable until it expires, as the kubelet's are)."""
        now = int(time.time())
        claims = {
            "aud": [self._audience],
            "exp": now + lifetime_s,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
            "kubernetes.io": {
                "namespace": NAMESPACE,
                "node": {"name": "node-1", "uid": str(uuid.uuid4())},
                "pod": {"name": f"{SERVICE_ACCOUNT}-7d9c6b7f4-x2x9k", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": SERVICE_ACCOUNT, "uid": str(uuid.uuid4())},
            },
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": _KID})
