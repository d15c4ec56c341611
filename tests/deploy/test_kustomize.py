"""deploy/k8s: every overlay renders, validates offline against the Kubernetes schemas, and keeps
the properties docs/kubernetes.md promises (hardening, probes, ports, replicas, database, Secrets)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import require_tool
from token_service.settings import Settings

from .conftest import ROOT, Rendering, containers

# The oldest Kubernetes minor the manifests promise to work on (grpc probes are GA since 1.27,
# PDB unhealthyPodEvictionPolicy since 1.27), and the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.28.0", "1.37.0")

# Custom resources have no schema in kubernetes-validate: it only prints a WARN and exits 0 for
# them, which would pass silently. They are split off and checked by test_monitors_* and test_istio.py.
CRD_GROUPS = ("monitoring.coreos.com/", "networking.istio.io/", "security.istio.io/")

TOKEN = "native-iam-token"


def kubernetes_validate(docs: list[dict[str, Any]], version: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("kubernetes-validate")
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return subprocess.run(
        [tool, "--strict", "--kubernetes-version", version, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _core(rendering: Rendering) -> list[dict[str, Any]]:
    return [d for d in rendering.docs if not d["apiVersion"].startswith(CRD_GROUPS)]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendering_validates_strictly(rendering: Rendering, version: str, tmp_path: Path) -> None:
    """Every built-in object of every rendering passes strict schema validation, and none is skipped for lack of a
    schema."""
    docs = _core(rendering)
    assert docs, f"{rendering.name} rendered nothing"
    result = kubernetes_validate(docs, version, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARN" not in output, output  # a kind without a schema would be skipped, not validated
    assert output.count("passed for resource") == len(docs), output


def test_strict_validation_rejects_an_unknown_field(renderings: dict[str, Rendering], tmp_path: Path) -> None:
    """The validator is not a rubber stamp: a misspelt field in the token Deployment fails it."""
    deployment = renderings["base"].one("Deployment", TOKEN)
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    result = kubernetes_validate([broken], KUBERNETES_VERSIONS[0], tmp_path)
    assert result.returncode != 0
    assert "readinessProbes" in result.stdout


def test_every_container_is_hardened(rendering: Rendering) -> None:
    """Every container runs non-root, read-only root fs, no privilege escalation, no capabilities, RuntimeDefault
    seccomp, with requests and limits."""
    deployments = rendering.of_kind("Deployment")
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for container in containers(deployment):
            where = f"{rendering.name}: {deployment['metadata']['name']}/{container['name']}"
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where


def test_token_service_probes_are_grpc_health_on_the_grpc_port(rendering: Rendering) -> None:
    """The token service's startup, readiness and liveness probes are kubelet grpc probes on its gRPC port."""
    container = rendering.one("Deployment", TOKEN)["spec"]["template"]["spec"]["containers"][0]
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert grpc_port == 50051
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, probe


def test_token_service_writes_only_to_volumes(rendering: Rendering) -> None:
    """With a read-only root fs the token service gets /tmp and its working directory as volumes
    (the SQLite default lives there)."""
    container = rendering.one("Deployment", TOKEN)["spec"]["template"]["spec"]["containers"][0]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp", "/var/lib/native-iam"}


def test_service_maps_the_agreed_ports(rendering: Rendering) -> None:
    """Service native-iam-token: 80 → gRPC 50051, 8080 → HTTP 8080, 9464 → metrics 9464."""
    service = rendering.one("Service", TOKEN)
    container = rendering.one("Deployment", TOKEN)["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    mapped = {p["port"]: named[p["targetPort"]] for p in service["spec"]["ports"]}
    assert mapped == {80: 50051, 8080: 8080, 9464: 9464}
    assert (
        service["spec"]["selector"].items()
        <= rendering.one("Deployment", TOKEN)["spec"]["template"]["metadata"]["labels"].items()
    )


def test_token_service_secrets_are_referenced_not_inlined(renderings: dict[str, Rendering]) -> None:
    """In production the database URL, signing keys and bootstrap admin come from Secrets the overlay does not ship."""
    prod = renderings["overlays/production"]
    assert prod.of_kind("Secret") == []
    pod = prod.one("Deployment", TOKEN)["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["SYSTEM_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "native-iam-db", "key": "url"}
    assert env["NATIVE_IAM_BOOTSTRAP_ADMIN"]["valueFrom"]["secretKeyRef"]["name"] == "native-iam-bootstrap-admin"
    assert "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD" not in env  # only the _FILE form: no password in the env
    volumes = {v["name"]: v for v in pod["volumes"]}
    keys_dir = env["NATIVE_IAM_SIGNING_KEYS_DIR"]["value"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == keys_dir)
    assert volumes[mount["name"]]["secret"]["secretName"] == "native-iam-signing-keys"
    password_file = Path(env["NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD_FILE"]["value"])
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == str(password_file.parent))
    assert volumes[mount["name"]]["secret"]["secretName"] == "native-iam-bootstrap-admin"


def _feed_token_file(container: dict[str, Any], volumes: dict[str, Any]) -> tuple[str, str]:
    """(Secret name, key) of the file NATIVE_IAM_FEED_TOKEN_FILE names in ``container``."""
    env = {e["name"]: e for e in container.get("env", [])}
    assert "NATIVE_IAM_FEED_TOKEN" not in env, "the feed token must come from a file, not an env value"
    path = env["NATIVE_IAM_FEED_TOKEN_FILE"]["value"]
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    secret = volumes[mount["name"]]["secret"]
    item = next(i for i in secret["items"] if path == f"{mount['mountPath']}/{i['path']}")
    return secret["secretName"], item["key"]


def test_the_token_service_reads_the_static_feed_token_from_a_secret(renderings: dict[str, Rendering]) -> None:
    """The token service still accepts a static feed token (sidecars without workload identity), from a file of
    the Secret native-iam-feed; the dev overlay generates it, production ships none; the example sidecar has none."""
    dev = renderings["overlays/dev"]
    deployment = dev.one("Deployment", TOKEN)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret = dev.one("Secret", "native-iam-feed")
    assert _feed_token_file(next(containers(deployment)), volumes) == (secret["metadata"]["name"], "token")
    assert renderings["overlays/production"].of_kind("Secret") == []
    prod = renderings["overlays/production"].one("Deployment", TOKEN)
    prod_volumes = {v["name"]: v for v in prod["spec"]["template"]["spec"]["volumes"]}
    assert _feed_token_file(next(containers(prod)), prod_volumes) == ("native-iam-feed", "token")
    sidecar = _sidecar_container(dev.one("Deployment", "orders"))
    assert not {"NATIVE_IAM_FEED_TOKEN", "NATIVE_IAM_FEED_TOKEN_FILE"} & {e["name"] for e in sidecar["env"]}


def _sidecar_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in containers(deployment) if c["name"] == "native-iam")


def _mounted(container: dict[str, Any], volumes: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """(the volume, the path inside it) of the file ``path`` in ``container``."""
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    return volumes[mount["name"]], path[len(mount["mountPath"]) + 1 :]


def test_the_sidecar_gets_a_projected_token_for_the_token_service(renderings: dict[str, Rendering]) -> None:
    """Issue 13 item 7: a projected serviceAccountToken, for the audience the token service's trust file expects
    (no "audience" there: its NATIVE_IAM_ISSUER), short-lived (600 s, the API minimum, to 1 h), mounted read-only into
    the sidecar only, at the file NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE names; the token endpoint is the token
    Service's http port; the feed token is asked for the token service's NATIVE_IAM_AUDIENCE."""
    dev = renderings["overlays/dev"]
    workload = dev.one("Deployment", "orders")
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    settings = dev.one("ConfigMap", "orders-native-iam-sidecar")["data"]
    token_settings = dev.one("ConfigMap", "native-iam-token-config")["data"]
    sidecar = _sidecar_container(workload)
    volume, inside = _mounted(sidecar, volumes, settings["NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE"])
    (source,) = volume["projected"]["sources"]
    projected = source["serviceAccountToken"]
    assert projected["path"] == inside
    trust = json.loads(dev.one("ConfigMap", "native-iam-cluster-issuers")["data"]["cluster-issuers.json"])
    (issuer,) = trust["issuers"]
    assert projected["audience"] == issuer.get("audience", token_settings["NATIVE_IAM_ISSUER"])
    assert 600 <= projected["expirationSeconds"] <= 3600
    assert all(m["readOnly"] for m in sidecar["volumeMounts"] if m["name"] == volume["name"])
    others = [c for c in containers(workload) if c is not sidecar]
    assert not [m for c in others for m in c.get("volumeMounts", []) if m["name"] == volume["name"]]
    assert pod["automountServiceAccountToken"] is False  # only the projected, audience-bound token
    endpoint = urlsplit(settings["NATIVE_IAM_TOKEN_ENDPOINT"])
    service = dev.one("Service", TOKEN)
    assert endpoint.hostname == service["metadata"]["name"] and endpoint.path == "/oauth2/token"
    assert endpoint.port == next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert settings["NATIVE_IAM_TOKEN_SERVICE_AUDIENCE"] == token_settings["NATIVE_IAM_AUDIENCE"]


def test_the_token_service_trusts_the_cluster_issuer(renderings: dict[str, Rendering], tmp_path: Path) -> None:
    """NATIVE_IAM_CLUSTER_ISSUERS_FILE names the file of ConfigMap native-iam-cluster-issuers; its CA file is the
    kube-root-ca.crt every namespace has; the base maps namespace shop's service accounts, the dev overlay the
    example's service account in its namespace; after issue 13 part B's merge, its parser accepts both files."""
    for name, subject in (
        ("base", "system:serviceaccount:shop:*"),
        ("overlays/dev", "system:serviceaccount:native-iam-dev:orders"),
    ):
        rendering = renderings[name]
        deployment = rendering.one("Deployment", TOKEN)
        container = next(containers(deployment))
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        volume, inside = _mounted(container, volumes, env["NATIVE_IAM_CLUSTER_ISSUERS_FILE"])
        configmap = rendering.one("ConfigMap", "native-iam-cluster-issuers")
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        text = configmap["data"][inside]
        (issuer,) = json.loads(text)["issuers"]
        assert issuer["issuer"] == "https://kubernetes.default.svc.cluster.local"
        assert subject in issuer["service_accounts"]
        ca, ca_inside = _mounted(container, volumes, issuer["ca_file"])
        assert ca["configMap"]["name"] == "kube-root-ca.crt" and ca["configMap"]["items"][0]["path"] == ca_inside
        try:
            from token_service.federation.trust import parse_trust  # type: ignore[import-not-found]
        except ImportError:  # issue 13 part B not merged yet
            continue
        # Outside the pod the CA file is elsewhere; everything else is parsed as the token service would.
        (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
        local = json.dumps({"issuers": [{**issuer, "ca_file": str(tmp_path / "ca.crt")}]})
        token_settings = rendering.one("ConfigMap", "native-iam-token-config")["data"]
        assert parse_trust(local, token_settings["NATIVE_IAM_ISSUER"])
    binding = renderings["base"].one("ClusterRoleBinding", "native-iam-service-account-issuer-discovery")
    assert binding["roleRef"]["name"] == "system:service-account-issuer-discovery"


def test_production_runs_replicas_behind_an_autoscaler(renderings: dict[str, Rendering]) -> None:
    """Production: ≥ 2 replicas, an HPA on the token Deployment with minReplicas ≥ 2, a PDB keeping ≥ 2 up."""
    prod = renderings["overlays/production"]
    assert prod.one("Deployment", TOKEN)["spec"]["replicas"] >= 2
    hpa = prod.one("HorizontalPodAutoscaler", TOKEN)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": TOKEN}
    assert hpa["spec"]["minReplicas"] >= 2
    assert prod.one("PodDisruptionBudget", TOKEN)["spec"]["minAvailable"] >= 2


def test_dev_runs_one_sqlite_replica_without_autoscaler(renderings: dict[str, Rendering]) -> None:
    """Dev: one replica, no HPA, Recreate, SQLite on the persistent volume mounted at the working directory."""
    dev = renderings["overlays/dev"]
    deployment = dev.one("Deployment", TOKEN)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert dev.of_kind("HorizontalPodAutoscaler") == []
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["SYSTEM_DB_URL"] == {"name": "SYSTEM_DB_URL", "value": "sqlite:////var/lib/native-iam/native-iam.db"}
    assert "NATIVE_IAM_SIGNING_KEYS_DIR" not in env  # generated and stored in the database
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "native-iam-token-data"}}
    assert dev.one("PersistentVolumeClaim", "native-iam-token-data")
    # The dev walkthrough (docs/kubernetes.md) reads the demo identity's password from the log.
    assert pod["containers"][0]["args"] == ["token-service", "--demo"]


def test_network_policy_admits_sidecars_ingress_and_prometheus_only(rendering: Rendering) -> None:
    """The token service's NetworkPolicy selects its pods and admits exactly sidecar pods, the ingress namespace and
    Prometheus, on named ports it has."""
    policy = rendering.one("NetworkPolicy", TOKEN)
    pod_labels = rendering.one("Deployment", TOKEN)["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    port_names = {
        p["name"] for p in rendering.one("Deployment", TOKEN)["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    sources = []
    for rule in policy["spec"]["ingress"]:
        assert {p["port"] for p in rule["ports"]} <= port_names
        for peer in rule["from"]:
            assert "ipBlock" not in peer
            sources.append((peer.get("namespaceSelector"), peer.get("podSelector")))
    assert sources == [
        ({}, {"matchLabels": {"native-iam.io/sidecar": "true"}}),
        ({"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}, None),
        (
            {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        ),
    ]


def test_example_workload_pod_is_admitted_by_the_network_policy(renderings: dict[str, Rendering]) -> None:
    """The example workload's pods carry the sidecar label the NetworkPolicy admits."""
    dev = renderings["overlays/dev"]
    labels = dev.one("Deployment", "orders")["spec"]["template"]["metadata"]["labels"]
    admitted = dev.one("NetworkPolicy", TOKEN)["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert admitted.items() <= labels.items()


def test_pods_carry_prometheus_scrape_annotations_for_a_port_they_expose(rendering: Rendering) -> None:
    """Each Deployment's pods are annotated for scraping, on a container port that exists."""
    for deployment in rendering.of_kind("Deployment"):
        template = deployment["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        ports = {p["containerPort"] for c in containers(deployment) for p in c.get("ports", [])}
        assert int(annotations["prometheus.io/port"]) in ports


def test_monitors_select_existing_objects_and_ports(renderings: dict[str, Rendering]) -> None:
    """The optional ServiceMonitor/PodMonitor (no schema offline) select the token Service and sidecar pods by labels
    and ports that exist."""
    with_operator = renderings["production+prometheus-operator"]
    dev = renderings["overlays/dev"]  # the one rendering with a sidecar workload to select
    monitor = with_operator.one("ServiceMonitor", TOKEN)
    service = with_operator.one("Service", TOKEN)
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}

    pod_monitor = with_operator.one("PodMonitor", "native-iam-sidecars")
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    workload = dev.one("Deployment", "orders")
    assert (
        pod_monitor["spec"]["selector"]["matchLabels"].items()
        <= workload["spec"]["template"]["metadata"]["labels"].items()
    )
    workload_ports = {p["name"] for c in containers(workload) for p in c.get("ports", [])}
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} <= workload_ports


def _env_names_read_by(module: Path) -> set[str]:
    """The environment variable names a settings module reads (its string literals)."""
    return set(re.findall(r"\"((?:NATIVE_IAM|SYSTEM)_[A-Z0-9_]+)\"", module.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("configmap", "settings_module"),
    [("native-iam-token-config", "token_service/settings.py"), ("orders-native-iam-sidecar", "sidecar/settings.py")],
)
def test_configmaps_set_only_variables_the_component_reads(
    renderings: dict[str, Rendering], configmap: str, settings_module: str
) -> None:
    """Every key of a settings ConfigMap is a variable the component's settings module reads (a typo would be ignored
    silently)."""
    module = ROOT / settings_module
    known = _env_names_read_by(module)
    keys = set(renderings["overlays/dev"].one("ConfigMap", configmap)["data"])
    assert keys
    assert keys - known == set()


def test_sidecars_expect_the_issuer_the_token_service_signs_with(renderings: dict[str, Rendering]) -> None:
    """In the dev overlay the sidecar's NATIVE_IAM_ISSUER equals the token service's, and it accepts
    (NATIVE_IAM_ACCEPTED_AUDIENCES) exactly the audience the token service issues (NATIVE_IAM_AUDIENCE)."""
    dev = renderings["overlays/dev"]
    token = dev.one("ConfigMap", "native-iam-token-config")["data"]
    sidecar = dev.one("ConfigMap", "orders-native-iam-sidecar")["data"]
    assert sidecar["NATIVE_IAM_ISSUER"] == token["NATIVE_IAM_ISSUER"]
    assert sidecar["NATIVE_IAM_ACCEPTED_AUDIENCES"] == token["NATIVE_IAM_AUDIENCE"]
    # ... and reaches the token service through its Service's gRPC port.
    host, _, port = sidecar["NATIVE_IAM_TOKEN_URL"].rpartition(":")
    service = dev.one("Service", TOKEN)
    assert host == service["metadata"]["name"]
    assert int(port) == next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")


def _quantity(value: str) -> float:
    """A Kubernetes CPU (cores) or memory (bytes) quantity as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_password_hashing_fits_the_token_service_limits(rendering: Rendering) -> None:
    """NATIVE_IAM_PASSWORD_WORKERS is set (the default counts the node's CPUs), at most the CPU limit, and
    that many concurrent argon2id hashes use under half the memory limit."""
    settings = rendering.one("ConfigMap", "native-iam-token-config")["data"]
    limits = rendering.one("Deployment", TOKEN)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    workers = int(settings["NATIVE_IAM_PASSWORD_WORKERS"])
    assert 1 <= workers <= _quantity(limits["cpu"])
    default_kib = Settings().argon2_memory_kib
    argon2_kib = int(settings.get("NATIVE_IAM_ARGON2_MEMORY_KIB", default_kib))
    assert workers * argon2_kib * 1024 < _quantity(limits["memory"]) / 2


def test_token_service_and_sidecars_run_the_same_image(renderings: dict[str, Rendering]) -> None:
    """In the dev overlay the token service and the sidecar container run one image, retagged by the overlay."""
    dev = renderings["overlays/dev"]
    images = {
        container["image"]
        for deployment in dev.of_kind("Deployment")
        for container in containers(deployment)
        if container["name"] in {"token-service", "native-iam"}
    }
    assert images == {"native-iam-oauth:dev"}


def _pre_stop_sleep_s(container: dict[str, Any]) -> int:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


def test_sidecar_outlives_envoy_on_shutdown(renderings: dict[str, Rendering]) -> None:
    """The sidecar's preStop pause is longer than Envoy's, and both fit in the grace period.

    Otherwise requests Envoy still accepts while endpoints update would meet a stopped sidecar (503)."""
    pod = renderings["overlays/dev"].one("Deployment", "orders")["spec"]["template"]["spec"]
    by_name = {c["name"]: c for c in pod["containers"]}
    envoy, sidecar = _pre_stop_sleep_s(by_name["envoy"]), _pre_stop_sleep_s(by_name["native-iam"])
    assert 0 < envoy < sidecar < pod["terminationGracePeriodSeconds"]


def test_every_variable_the_manifests_set_is_documented(renderings: dict[str, Rendering]) -> None:
    """Each NATIVE_IAM_*/SYSTEM_* variable a ConfigMap or container env sets is in docs/configuration.md."""
    section = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`((?:NATIVE_IAM|SYSTEM)_[A-Z0-9_]+)`", section))
    used: set[str] = set()
    for rendering in renderings.values():
        for configmap in rendering.of_kind("ConfigMap"):
            used |= {k for k in configmap.get("data", {}) if k.startswith(("NATIVE_IAM_", "SYSTEM_"))}
        for deployment in rendering.of_kind("Deployment"):
            for container in containers(deployment):
                used |= {
                    e["name"] for e in container.get("env", []) if e["name"].startswith(("NATIVE_IAM_", "SYSTEM_"))
                }
    assert "SYSTEM_DB_URL" in used
    assert used - documented == set()


def test_the_redis_component_wires_system_cache_url_from_its_secret(renderings: dict[str, Rendering]) -> None:
    """production+redis: the token service reads SYSTEM_CACHE_URL from the Secret native-iam-redis
    (key url; shipped by nobody), Redis takes its password from the same Secret, keeps an
    append-only file, never evicts (an evicted counter is a fresh budget of guesses), is reachable
    only from token-service pods (and Prometheus on the exporter), and its Service targets it.
    Without the component nothing mentions Redis."""
    rendering = renderings["production+redis"]
    token = rendering.one("Deployment", TOKEN)["spec"]["template"]
    env = {e["name"]: e for e in token["spec"]["containers"][0]["env"]}
    assert env["SYSTEM_CACHE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "native-iam-redis", "key": "url"}
    assert rendering.of_kind("Secret") == []
    redis = rendering.one("Deployment", "native-iam-redis")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    password = {e["name"]: e for e in container["env"]}["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "native-iam-redis", "key": "password"}
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["spec"]["strategy"]["type"] == "Recreate"
    policy = rendering.one("NetworkPolicy", "native-iam-redis")
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
    token_peer = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert token_peer.items() <= token["metadata"]["labels"].items()
    service = rendering.one("Service", "native-iam-redis")
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}
    assert "native-iam-redis" not in renderings["overlays/production"].yaml_text
