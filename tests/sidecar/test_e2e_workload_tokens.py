"""Issue 13 end to end: a workload calls another with a token it never stored, through real processes.

Workload A (`checkout` in namespace `shop`) asks its own sidecar for a token for `orders`; the
sidecar buys it at the real token service's token endpoint with A's projected service-account
token (minted by the stand-in Kubernetes issuer, tests/k8s_issuer.py) on the client_credentials
grant. A calls workload B's Envoy; B's sidecar, which subscribes to the revocation feed with its own
workload token (no static feed token anywhere), allows. The admin disables A's client: B denies
within 1 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import httpx
import pytest

from native_iam.admin.v1 import admin_pb2, admin_pb2_grpc
from native_iam.oauth.v1 import workload_pb2, workload_pb2_grpc
from tests.k8s_issuer import KubernetesIssuer

from ..conftest import require_tool
from . import _stack
from .test_e2e_token_service import ISSUER, _admin_token, bearer, token_service

pytestmark = pytest.mark.envoy

#: Service account (namespace shop) → its OAuth client, and what the client may have.
CLIENTS = {
    "checkout": ("shop-checkout", ["orders:read", "native-iam.feed"], ["orders", "native-iam"]),
    "orders": ("shop-orders", ["native-iam.feed"], ["native-iam"]),
}


def test_a_workload_calls_another_with_a_token_from_its_sidecar_until_its_client_is_disabled(
    tmp_path: Path,
) -> None:
    envoy_bin = require_tool("envoy")
    with KubernetesIssuer() as cluster:
        trust = cluster.trust_file(
            tmp_path,
            audience=ISSUER,
            service_accounts={f"system:serviceaccount:shop:{sa}": c[0] for sa, c in CLIENTS.items()},
        )
        with token_service(tmp_path, NATIVE_IAM_CLUSTER_ISSUERS_FILE=str(trust), NATIVE_IAM_FEED_TOKEN="") as (
            target,
            http_url,
            _,
        ):
            admin = (("authorization", f"Bearer {_admin_token(target)}"),)
            with grpc.insecure_channel(target) as channel:
                clients = admin_pb2_grpc.ClientsStub(channel)
                for client_id, scopes, audiences in CLIENTS.values():
                    clients.CreateClient(
                        admin_pb2.CreateClientRequest(
                            client_id=client_id,
                            token_endpoint_auth_method="kubernetes_service_account",
                            grant_types=["client_credentials"],
                            audiences=audiences,
                            scopes=scopes,
                        ),
                        metadata=admin,
                        timeout=10,
                    )

            def workload(name: str, **env: str) -> dict[str, str]:
                """A sidecar's settings: the kubelet's projected token for shop/name, no feed token."""
                sa_token = tmp_path / f"sa-{name}"
                sa_token.write_text(cluster.token("shop", name, audience=ISSUER, lifetime_s=600))
                return {
                    "NATIVE_IAM_TOKEN_URL": target,
                    "NATIVE_IAM_ISSUER": ISSUER,
                    "NATIVE_IAM_FEED_TOKEN": "",
                    "NATIVE_IAM_TOKEN_ENDPOINT": f"{http_url}/oauth2/token",
                    "NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE": str(sa_token),
                    **env,
                }

            b_env = workload("orders", NATIVE_IAM_ACCEPTED_AUDIENCES="native-iam orders")
            with _stack.echo_upstream() as upstream, _stack.sidecar(tmp_path, b_env) as b:
                listen = _stack.free_port()
                config = _stack.envoy_config(tmp_path, listen=listen, authz=b["authz"], upstream=upstream)
                with (
                    _stack.envoy(envoy_bin, config, listen) as orders_url,
                    _stack.sidecar(tmp_path, workload("checkout")) as a,
                    grpc.insecure_channel(f"127.0.0.1:{a['oauth']}") as a_channel,
                    httpx.Client(base_url=orders_url, timeout=5) as http,
                ):
                    # A: a token for orders from its own sidecar, never from a stored secret.
                    token = workload_pb2_grpc.WorkloadTokensStub(a_channel).GetToken(
                        workload_pb2.GetTokenRequest(audience="orders", scopes=["orders:read"]), timeout=10
                    )
                    assert token.token_type == "Bearer" and list(token.scopes) == ["orders:read"]
                    allowed = http.get("/orders/7", headers=bearer(token.access_token))
                    assert allowed.status_code == 200, allowed.text

                    with grpc.insecure_channel(target) as channel:
                        admin_pb2_grpc.ClientsStub(channel).SetClientEnabled(
                            admin_pb2.SetClientEnabledRequest(client_id="shop-checkout", enabled=False),
                            metadata=admin,
                            timeout=10,
                        )
                    disabled = time.monotonic()
                    while http.get("/orders/7", headers=bearer(token.access_token)).status_code == 200:
                        assert time.monotonic() - disabled < 1.0, "B still allows A 1 s after its client was disabled"
                        time.sleep(0.01)
                    denied = http.get("/orders/7", headers=bearer(token.access_token))
                    assert denied.status_code == 401 and denied.json()["error"] == "invalid_token"
