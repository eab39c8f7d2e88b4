"""What the builders render: hub, proxy, access, storage, accelerators, capacity."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import pytest
import yaml

from labfleet.config.load import parse_config, parse_text
from labfleet.config.model import FleetConfig
from labfleet.kube import access as access_builders
from labfleet.kube.hub import CONFIG_FILE, DB_URL_ENV, HUB_CONFIG_IN_IMAGE
from labfleet.kube.images import rewrite_image
from labfleet.kube.meta import (
    APPLY_CREATE_ONLY,
    APPLY_POLICY,
    CONFIG_CHECKSUM,
    DESTROY_KEEP_USER_DATA,
    DESTROY_POLICY,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
)
from labfleet.kube.render import object_id, render_objects
from labfleet.kube.spawner_settings import build_kubespawner_settings
from labfleet.secrets import secrets_from_env
from tests.kube.test_render_helpers import (
    FIXED_SECRETS,
    example_ids,
    load_example,
    pod_specs,
    render_example,
)

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                  "PersistentVolume", "ClusterIssuer"}  # fmt: skip


def render(text: str) -> list[dict[str, Any]]:
    return render_objects(parse_text(text), FIXED_SECRETS)


#: google-hardened as it was before cluster_scoped: false: the options that need cluster rights.
WITH_CLUSTER_RIGHTS = """
name: datalab
profiles:
  - {slug: standard, display_name: Standard, default: true, cpu: 2, cpu_guarantee: 0.5,
     memory: 8G, memory_guarantee: 2G}
kubernetes:
  namespace: datalab
  access:
    kind: ingress
    host: lab.example.org
    ingress: {cert_manager_issuer: letsencrypt, acme_email: ops@example.org}
  users:
    namespaces: per-user
    per_user: {quota_cpu: 8, quota_memory: 32G, quota_pods: 2}
  placeholders: {replicas: 2, profile: standard}
"""


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> Counter[str]:
    return Counter(o["kind"] for o in objects)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def user_settings(config: FleetConfig) -> dict[str, Any]:
    spawner: dict[str, Any] = build_kubespawner_settings(config)["KubeSpawner"]
    return spawner


def profile_override(config: FleetConfig, slug: str) -> dict[str, Any]:
    override: dict[str, Any] = user_settings(config)["labfleet_profile_overrides"][slug]
    return override


# -- every object ------------------------------------------------------------------------


@pytest.mark.parametrize("example", example_ids())
def test_every_object_is_labelled_and_unique(example: str) -> None:
    config = load_example(example)
    objects = render_example(example)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels[LABEL_MANAGED_BY] == "labfleet", object_id(obj)
        assert labels[LABEL_INSTANCE] == config.name, object_id(obj)
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], object_id(obj)
        else:
            assert obj["metadata"]["namespace"] == config.kubernetes.namespace, object_id(obj)
    ids = [object_id(o) for o in objects]
    assert len(ids) == len(set(ids))


def test_rendering_is_deterministic() -> None:
    assert render_example("gke-iap") == render_example("gke-iap")


# -- hub -------------------------------------------------------------------------------------


def test_hub_deployment_runs_our_entry_file_with_the_kubernetes_runtime() -> None:
    objects = render_example("minimal")
    deployment = one(objects, "Deployment", "labfleet-hub")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    container = spec["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["jupyterhub", "-f", HUB_CONFIG_IN_IMAGE]
    env = env_of(container)
    assert env["LABFLEET_PLATFORM"] == "kubernetes"
    assert env["LABFLEET_CONFIG"] == f"/etc/labfleet/{CONFIG_FILE}"
    assert env["LABFLEET_DATA_DIR"] == "/srv/labfleet"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/hub/health"
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "labfleet-hub-db"
    assert one(objects, "PersistentVolumeClaim", "labfleet-hub-db")


def test_probes_follow_base_url() -> None:
    objects = render("hub: {base_url: /jupyter/}")
    container = one(objects, "Deployment", "labfleet-hub")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/jupyter/hub/health"


def test_secret_is_create_only_and_feeds_the_hub_environment() -> None:
    """The Secret + Deployment env give back exactly the secrets the hub reads."""
    objects = render_example("minimal")
    secret = one(objects, "Secret", "labfleet-hub-secret")
    assert secret["metadata"]["annotations"][APPLY_POLICY] == APPLY_CREATE_ONLY
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    container = one(objects, "Deployment", "labfleet-hub")["spec"]["template"]["spec"][
        "containers"
    ][0]
    environ = {}
    for item in container["env"]:
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] == secret["metadata"]["name"]:
            environ[item["name"]] = data[ref["key"]]
    assert secrets_from_env(environ) == FIXED_SECRETS


def test_proxy_token_comes_from_the_same_secret() -> None:
    objects = render_example("minimal")
    proxy = one(objects, "Deployment", "labfleet-proxy")["spec"]["template"]["spec"]
    token = env_of(proxy["containers"][0])["CONFIGPROXY_AUTH_TOKEN"]["secretKeyRef"]
    assert token == {"name": "labfleet-hub-secret", "key": "proxy_token"}


@pytest.mark.parametrize("example", example_ids())
def test_config_secret_round_trips_to_the_same_config(example: str) -> None:
    config = load_example(example)
    secret = one(render_example(example), "Secret", f"{config.name}-config")
    text = base64.b64decode(secret["data"][CONFIG_FILE]).decode()
    reloaded = parse_config(yaml.safe_load(text))
    if config.kubernetes.hub.database.kind == "postgres":
        assert reloaded.hub.db_url == f"env:{DB_URL_ENV}"
        reloaded = reloaded.model_copy(update={"hub": config.hub})
    assert reloaded == config


def test_postgres_url_comes_from_the_named_secret_and_no_pvc() -> None:
    objects = render_example("google-hardened")
    assert "PersistentVolumeClaim" not in kinds(
        [o for o in objects if "hub" in o["metadata"]["name"]]
    )
    container = one(objects, "Deployment", "datalab-hub")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert env_of(container)[DB_URL_ENV] == {"secretKeyRef": {"name": "datalab-db", "key": "url"}}
    assert "--upgrade-db" not in container["args"]


def test_config_change_rolls_the_hub() -> None:
    def checksum(text: str) -> str:
        deployment = one(render(text), "Deployment", "labfleet-hub")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM]
        return value

    assert checksum("culling: {timeout: 1h}") != checksum("culling: {timeout: 2h}")
    assert checksum("culling: {timeout: 1h}") == checksum("culling: {timeout: 60m}")


def test_shared_namespace_uses_a_namespaced_role() -> None:
    objects = render_example("minimal")
    counts = kinds(objects)
    assert counts["Role"] == 1 and counts["RoleBinding"] == 1 and not counts["ClusterRole"]
    rules = one(objects, "Role")["rules"]
    assert not any("namespaces" in r["resources"] for r in rules)
    namespace = one(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["metadata"]["annotations"][DESTROY_POLICY] == DESTROY_KEEP_USER_DATA


def test_per_user_namespaces_use_a_cluster_role() -> None:
    objects = render(WITH_CLUSTER_RIGHTS)
    counts = kinds(objects)
    assert counts["ClusterRole"] == 1 and counts["ClusterRoleBinding"] == 1 and not counts["Role"]
    role = one(objects, "ClusterRole")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert {"namespaces", "networkpolicies", "resourcequotas", "serviceaccounts"} <= resources
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "datalab-hub", "namespace": "datalab"}
    ]
    assert binding["metadata"]["name"].startswith("datalab-datalab")  # namespace-qualified


def test_no_namespace_object_when_not_asked() -> None:
    assert "Namespace" not in kinds(render("kubernetes: {create_namespace: false}"))


# -- hub <-> cluster settings -----------------------------------------------------------------


def test_hub_settings_point_at_services_and_keep_pods_on_restart() -> None:
    settings = build_kubespawner_settings(load_example("minimal"))
    assert settings["JupyterHub"]["spawner_class"] == "labfleet.kube.spawner.LabfleetKubeSpawner"
    assert settings["JupyterHub"]["hub_connect_url"] == "http://labfleet-hub.labfleet.svc:8081"
    assert settings["JupyterHub"]["cleanup_servers"] is False
    proxy = settings["ConfigurableHTTPProxy"]
    assert proxy == {
        "api_url": "http://labfleet-proxy-api.labfleet.svc:8001",
        "should_start": False,
    }


# -- proxy -----------------------------------------------------------------------------------


def test_labfleet_proxy_runs_from_the_hub_image() -> None:
    objects = render("kubernetes: {hub: {image: 'example.org/hub:1'}}")
    container = one(objects, "Deployment", "labfleet-proxy")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "example.org/hub:1"
    assert container["args"][0] == "labfleet-proxy"
    assert "--api-port=8001" in container["args"]
    assert "--default-target=http://labfleet-hub:8081" in container["args"]


def test_chp_proxy_uses_the_chp_image() -> None:
    objects = render("proxy: {kind: chp}")
    pod = one(objects, "Deployment", "labfleet-proxy")["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"][0] == "configurable-http-proxy"
    assert "configurable-http-proxy" in pod["containers"][0]["image"]
    assert pod["securityContext"]["runAsUser"] == 65534


# -- access ----------------------------------------------------------------------------------


def test_cluster_ip_prints_port_forward() -> None:
    config = load_example("minimal")
    public = one(render_objects(config, FIXED_SECRETS), "Service", "labfleet-proxy-public")
    assert public["spec"]["type"] == "ClusterIP"
    assert "port-forward service/labfleet-proxy-public" in access_builders.how_to_reach(config)


def test_load_balancer_with_source_ranges() -> None:
    objects = render(
        "kubernetes: {access: {kind: load-balancer, load_balancer_source_ranges: [203.0.113.0/24]}}"
    )
    public = one(objects, "Service", "labfleet-proxy-public")
    assert public["spec"]["type"] == "LoadBalancer"
    assert public["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert "Ingress" not in kinds(objects)


def test_ingress_with_cert_manager() -> None:
    ingress = one(render_example("google-hardened"), "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    objects = render(WITH_CLUSTER_RIGHTS)
    ingress = one(objects, "Ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"hosts": ["lab.example.org"], "secretName": "datalab-tls"}]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "datalab-proxy-public"
    issuer = one(objects, "ClusterIssuer", "letsencrypt")
    assert issuer["spec"]["acme"]["email"] == "ops@example.org"


def test_gke_ingress_with_iap_static_ip_and_managed_certificate() -> None:
    objects = render_example("gke-iap")
    backend = one(objects, "BackendConfig")
    assert backend["spec"]["iap"] == {"enabled": True}  # Google-managed OAuth client
    assert backend["spec"]["healthCheck"]["requestPath"] == "/hub/health"
    public = one(objects, "Service", "notebooks-proxy-public")
    annotations = public["metadata"]["annotations"]
    assert yaml.safe_load(annotations["cloud.google.com/backend-config"]) == {
        "default": backend["metadata"]["name"]
    }
    assert yaml.safe_load(annotations["cloud.google.com/neg"]) == {"ingress": True}
    ingress = one(objects, "Ingress")
    meta = ingress["metadata"]["annotations"]
    assert meta["kubernetes.io/ingress.global-static-ip-name"] == "notebooks-ip"
    certificate = one(objects, "ManagedCertificate")
    assert meta["networking.gke.io/managed-certificates"] == certificate["metadata"]["name"]
    assert certificate["spec"]["domains"] == ["notebooks.example.com"]
    assert one(objects, "FrontendConfig")["spec"]["redirectToHttps"]["enabled"] is True


def test_gke_iap_with_own_oauth_client() -> None:
    objects = render(
        "kubernetes: {access: {kind: gke-ingress, host: hub.example.com,"
        " gke: {oauth_client_secret: iap-client}}}"
    )
    iap = one(objects, "BackendConfig")["spec"]["iap"]
    assert iap == {"enabled": True, "oauthclientCredentials": {"secretName": "iap-client"}}


# -- storage ---------------------------------------------------------------------------------


def test_dynamic_pvc_per_user() -> None:
    override = profile_override(load_example("kubeflow-form"), "tf-cpu")
    assert override["storage_pvc_ensure"] is True
    assert override["pvc_name_template"] == "workspace-{server_slug}"  # claim_per: server
    assert override["storage_capacity"] == "10Gi"
    assert override["storage_class"] is None  # the cluster's default class


def test_profile_without_storage() -> None:
    override = profile_override(load_example("kubeflow-form"), "scipy")
    assert override["storage_pvc_ensure"] is False and override["volumes"] == []


def test_nfs_export_is_a_pv_and_a_rwx_claim_with_per_user_subpath() -> None:
    objects = render_example("github-nfs")
    volume = one(objects, "PersistentVolume")
    assert volume["spec"]["nfs"] == {"server": "10.96.200.10",
                                     "path": "/exports"}  # fmt: skip
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    claim = one(objects, "PersistentVolumeClaim", "lsst-lab-nfs-0")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    for obj in (volume, claim):
        assert obj["metadata"]["annotations"][DESTROY_POLICY] == DESTROY_KEEP_USER_DATA
    override = profile_override(load_example("github-nfs"), "small")
    assert override["volumes"] == [
        {"name": "home", "persistentVolumeClaim": {"claimName": "lsst-lab-nfs-0"}}
    ]
    assert override["volume_mounts"][0]["subPath"] == "home/{user_slug}"


def test_gcsfuse_per_user_bucket_and_shared_bucket() -> None:
    override = profile_override(load_example("gke-iap"), "cpu")
    volume = override["volumes"][0]["csi"]
    assert volume["driver"] == "gcsfuse.csi.storage.gke.io"
    assert volume["volumeAttributes"]["bucketName"] == "gcsfuse-{user_slug}"
    assert override["extra_annotations"] == {"gke-gcsfuse/volumes": "true"}
    shared = parse_text(
        "kubernetes: {storage: {kind: gcsfuse, mode: shared-bucket, bucket: team-data}}"
    )
    attributes = profile_override(shared, "default")["volumes"][0]["csi"]["volumeAttributes"]
    assert attributes["bucketName"] == "team-data"
    assert "only-dir=users/{user_slug}" in attributes["mountOptions"].split(",")


# -- accelerators ----------------------------------------------------------------------------


def test_gpu_profile_requests_gpus_on_accelerator_nodes() -> None:
    override = profile_override(load_example("gke-iap"), "gpu-l4")
    assert override["extra_resource_limits"] == {"nvidia.com/gpu": "2"}
    assert override["extra_resource_guarantees"] == {"nvidia.com/gpu": "2"}
    assert override["node_selector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in override[
        "tolerations"
    ]


def test_tpu_profile_selects_slice_topology() -> None:
    override = profile_override(load_example("gke-iap"), "tpu-v5e")
    assert override["extra_resource_limits"] == {"google.com/tpu": "4"}
    assert override["node_selector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "2x2",
    }


def test_every_profile_sets_the_same_traits() -> None:
    """Switching profiles can never inherit a GPU or a volume from the previous choice."""
    for example in example_ids():
        overrides = user_settings(load_example(example))["labfleet_profile_overrides"]
        keys = {frozenset(o) for o in overrides.values()}
        assert len(keys) == 1, example


def test_cpu_profile_has_no_gpu() -> None:
    override = profile_override(load_example("gke-iap"), "cpu")
    assert override["extra_resource_limits"] == {} and override["node_selector"] == {}
    assert override["cpu_limit"] == 8 and override["mem_guarantee"] == 8 * 10**9


# -- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("quay.io/jupyter/scipy-notebook:2024", "mirror.example/m/jupyter/scipy-notebook:2024"),
        ("python:3.12", "mirror.example/m/library/python:3.12"),
        ("jupyter/base-notebook", "mirror.example/m/jupyter/base-notebook"),
        ("localhost:5000/x/y:1", "mirror.example/m/x/y:1"),
        ("registry.k8s.io/pause:3.10", "mirror.example/m/pause:3.10"),
    ],
)
def test_registry_rewrite(image: str, expected: str) -> None:
    images = parse_text("kubernetes: {images: {registry: mirror.example/m}}").kubernetes.images
    assert rewrite_image(image, images) == expected


def test_private_registry_applies_to_every_image_with_pull_secrets() -> None:
    config = load_example("google-hardened")
    for name, spec in pod_specs(render_objects(config, FIXED_SECRETS)):
        assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}], name
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["image"].startswith("registry.example.org/mirror/"), name
    settings = user_settings(config)
    assert settings["image_pull_secrets"] == ["mirror-pull"]
    for override in settings["labfleet_profile_overrides"].values():
        assert override["image"].startswith("registry.example.org/mirror/")


# -- capacity --------------------------------------------------------------------------------


def test_prepuller_pulls_each_profile_image_once_on_every_node() -> None:
    config = load_example("gke-iap")
    daemonset = one(render_objects(config, FIXED_SECRETS), "DaemonSet")
    spec = daemonset["spec"]["template"]["spec"]
    pulled = [c["image"] for c in spec["initContainers"]]
    assert pulled == list(dict.fromkeys(p.image for p in config.profiles))
    tolerated = {t["key"] for t in spec["tolerations"]}
    assert {"nvidia.com/gpu", "google.com/tpu"} <= tolerated


def test_prepuller_and_placeholders_off_by_default() -> None:
    counts = kinds(render_example("minimal"))
    assert not counts["DaemonSet"] and not counts["PriorityClass"]
    assert counts["Deployment"] == 2


def test_placeholders_hold_room_at_low_priority() -> None:
    objects = render(WITH_CLUSTER_RIGHTS)
    priority = one(objects, "PriorityClass")
    assert priority["value"] < 0 and priority["globalDefault"] is False
    deployment = one(objects, "Deployment", "datalab-user-placeholder")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == priority["metadata"]["name"]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "2G"}


def test_password_mode_tells_how_to_create_the_first_admin() -> None:
    from labfleet.config.load import parse_text
    from labfleet.kube.access import first_admin_hint

    hint = first_admin_hint(parse_text("auth: {kind: password}"))
    assert hint and "exec -i deploy/labfleet-hub" in hint and "--data-dir /srv/labfleet" in hint
    assert first_admin_hint(parse_text("auth: {kind: dummy}")) is None
