"""The chart on its own: helm lint, the values schema, and what it renders (security, RBAC, options)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from charts import api_usage
from charts.chart_support import (
    CHART,
    CRD_FILE,
    ROOT,
    Obj,
    by_kind,
    docs,
    helm,
    pod_specs,
    render,
    sync_module,
)
from mlrollout.handlers import children

VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "namespaced": ["watchNamespaces={team-a,team-b}"],
    "everything": [
        "serviceMonitor.enabled=true",
        "podDisruptionBudget.enabled=true",
        "networkPolicy.enabled=true",
        "networkPolicy.apiServerCIDRs={10.96.0.1/32}",
        "rbac.gatewayAPI=true",
        "rbac.istio=true",
        "peering.enabled=true",
        "replicaCount=2",
        "jobs.namespaces={ml,ml-staging}",
        "image.digest=sha256:" + "a" * 64,
    ],
    "no-rbac": [
        "rbac.create=false",
        "serviceAccount.create=false",
        "serviceAccount.name=existing",
        "jobs.serviceAccount.create=false",
    ],
}

# Kopf's own calls (the library, not our code): it watches the resource, patches it (finalizer,
# progress in annotations and status) and posts core Events about handlers.
KOPF_NAMESPACED_RULES = {
    ("mlrollout.io", "modeldeployments"): {"list", "watch", "patch"},
    ("mlrollout.io", "modeldeployments/status"): {"patch"},
    ("", "events"): {"create"},
} | {(kind.group, kind.plural): {"list", "watch"} for kind in children.WATCHED if not kind.optional}


def owner_reference_rules() -> dict[tuple[str, str], set[str]]:
    """blockOwnerDeletion on children's ownerReferences needs update on the owner's finalizers."""
    owner = (api_usage.PACKAGE / "adapters" / "k8s" / "owner.py").read_text()
    return (
        {("mlrollout.io", "modeldeployments/finalizers"): {"update"}} if "blockOwnerDeletion" in owner else {}
    )


# (apiGroup, resource) -> verbs, exactly: what the code uses (scanned from its source), what Kopf
# uses, and what ownerReferences need. Any other verb in the chart fails the RBAC tests below.
ALL_OPERATOR_RULES = api_usage.merge(
    api_usage.merge(api_usage.operator_rights(), KOPF_NAMESPACED_RULES), owner_reference_rules()
)
# The user's routes (traffic routers gatewayAPI, istio): granted only when the chart is told to.
ROUTER_GROUPS = ("gateway.networking.k8s.io", "networking.istio.io")
ROUTER_RULES = {k: v for k, v in ALL_OPERATOR_RULES.items() if k[0] in ROUTER_GROUPS}
# Kopf's peering objects: only with peering.enabled (the operator creates its own at start).
PEERING_GROUP = "kopf.dev"
OPERATOR_NAMESPACED_RULES = {
    k: v for k, v in ALL_OPERATOR_RULES.items() if k[0] not in (*ROUTER_GROUPS, PEERING_GROUP)
}
KOPF_CLUSTER_RULES = {
    ("", "namespaces"): {"get", "list", "watch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
}
JOB_RULES = {
    ("mlrollout.io", "modeldeployments"): {"get"},
    ("mlrollout.io", "modeldeployments/status"): {"get", "patch"},
}


def flatten(rules: Iterable[Obj]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "resourceNames" not in rule or rule["resourceNames"], rule
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


def rendered(name: str) -> list[Obj]:
    return docs(render(*VALUE_SETS[name]))


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_helm_lint_strict(values: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for v in VALUE_SETS[values]:
        args += ["--set", v]
    out = helm(*args).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("securityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem"),
        ("securityContext.allowPrivilegeEscalation=true", "allowPrivilegeEscalation"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("securityContext.capabilities.add={NET_ADMIN}", "capabilities"),
        ("resources.limits=null", "limits"),
        ("watchNamespaces={Not_A_Namespace}", "watchNamespaces"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("operator.healthPort=0", "healthPort"),
        ("operator.logFormat=xml", "logFormat"),
        ("replicaCount=-1", "replicaCount"),
        ("unknownKey=1", "unknownKey"),
        ("rbac.superuser=true", "superuser"),
    ],
)
def test_values_schema_rejects(value: str, complaint: str) -> None:
    proc = helm("template", "r", str(CHART), "--set", value, check=False)
    assert proc.returncode != 0, f"{value} was accepted"
    assert "schema" in proc.stderr and complaint in proc.stderr, proc.stderr


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_workloads_are_locked_down(values: str) -> None:
    objs = rendered(values)
    specs = pod_specs(objs)
    assert len(specs) == 1
    for spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), c["resources"]
            for e in c.get("env", []):
                assert "secretKeyRef" not in e.get("valueFrom", {}), e
                assert e.get("value") != "", e  # the API server drops it: `kubectl apply` never settles
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
            assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
            assert not c["image"].endswith(":latest")
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts  # the only writable path on a read-only root


def test_image_defaults_to_app_version_and_digest_wins() -> None:
    dep = by_kind(rendered("default"), "Deployment")[0]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.1.0")
    dep = by_kind(rendered("everything"), "Deployment")[0]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith("@sha256:" + "a" * 64)


def test_operator_env_names_the_watched_namespaces() -> None:
    def env(objs: list[Obj]) -> dict[str, str]:
        c = by_kind(objs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "") for e in c["env"]}

    assert "MLROLLOUT_NAMESPACES" not in env(rendered("default"))  # unset: every namespace
    assert env(rendered("namespaced"))["MLROLLOUT_NAMESPACES"] == "team-a,team-b"
    assert env(rendered("default"))["MLROLLOUT_JOB_SERVICE_ACCOUNT"] == "mlrollout-job"


def test_cluster_wide_rbac_is_exactly_what_the_operator_needs() -> None:
    objs = rendered("default")
    assert not by_kind(objs, "Role") or all(
        r["metadata"]["name"] == "mlrollout-job" for r in by_kind(objs, "Role")
    )
    (cr,) = by_kind(objs, "ClusterRole")
    assert flatten(cr["rules"]) == OPERATOR_NAMESPACED_RULES | KOPF_CLUSTER_RULES
    (crb,) = by_kind(objs, "ClusterRoleBinding")
    assert crb["roleRef"]["name"] == cr["metadata"]["name"]
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "rel-mlrollout", "namespace": "mlr"}]


def test_namespaced_rbac_grants_nothing_cluster_wide_but_kopf_reads() -> None:
    objs = rendered("namespaced")
    (cr,) = by_kind(objs, "ClusterRole")
    assert flatten(cr["rules"]) == KOPF_CLUSTER_RULES
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in by_kind(objs, "Role")}
    for ns in ("team-a", "team-b"):
        assert flatten(roles[(ns, "rel-mlrollout")]["rules"]) == OPERATOR_NAMESPACED_RULES
        assert flatten(roles[(ns, "mlrollout-job")]["rules"]) == JOB_RULES
    bindings = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in by_kind(objs, "RoleBinding")}
    assert bindings[("team-a", "rel-mlrollout")]["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-mlrollout", "namespace": "mlr"}
    ]
    assert bindings[("team-a", "mlrollout-job")]["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlrollout-job", "namespace": "team-a"}
    ]
    assert {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in by_kind(objs, "ServiceAccount")} == {
        ("mlr", "rel-mlrollout"),
        ("team-a", "mlrollout-job"),
        ("team-b", "mlrollout-job"),
    }


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_no_rule_is_a_wildcard_or_touches_secrets(values: str) -> None:
    for obj in by_kind(rendered(values), "ClusterRole") + by_kind(rendered(values), "Role"):
        for rule in obj["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], rule
            assert not {
                "secrets",
                "serviceaccounts/token",
                "pods/exec",
                "roles",
                "rolebindings",
                "clusterroles",
                "clusterrolebindings",
            } & set(rule["resources"]), rule
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule


def test_optional_traffic_router_and_peering_rules() -> None:
    (cr,) = by_kind(rendered("everything"), "ClusterRole")
    rules = flatten(cr["rules"])
    assert set(ROUTER_RULES) == {
        ("gateway.networking.k8s.io", "httproutes"),
        ("networking.istio.io", "virtualservices"),
    }
    for key, verbs in ROUTER_RULES.items():
        assert rules[key] == verbs, key
    assert rules[("kopf.dev", "clusterkopfpeerings")] == {"create", "get", "list", "watch", "patch"}
    # What the operator's own code calls (it creates its peering object), plus Kopf's keep-alives.
    peering_calls = {k: v for k, v in ALL_OPERATOR_RULES.items() if k[0] == PEERING_GROUP}
    assert peering_calls == {("kopf.dev", "kopfpeerings"): {"create"}}
    assert peering_calls[("kopf.dev", "kopfpeerings")] <= rules[("kopf.dev", "kopfpeerings")]


def test_peering_crds_only_with_peering_and_never_removed_on_uninstall() -> None:
    crds = {c["metadata"]["name"]: c for c in by_kind(rendered("everything"), "CustomResourceDefinition")}
    assert set(crds) == {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"}
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds.values())
    assert not by_kind(rendered("default"), "CustomResourceDefinition")
    # Another shard's release made them: this one leaves them alone.
    assert not by_kind(
        docs(render("peering.enabled=true", "peering.createCRDs=false")), "CustomResourceDefinition"
    )


def test_several_replicas_without_peering_are_refused() -> None:
    result = helm("template", "rel", str(CHART), "--set", "replicaCount=2", check=False)
    assert result.returncode != 0 and "needs peering.enabled=true" in result.stderr


def test_the_webhook_secret_comes_from_an_existing_secret_and_never_from_values() -> None:
    def env(objs: list[Obj]) -> dict[str, Obj]:
        c = by_kind(objs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e for e in c["env"]}

    assert "MLROLLOUT_WEBHOOK_SECRET" not in env(rendered("default"))
    objs = docs(render("webhook.existingSecret=mlflow-webhook", "webhook.secretKey=hmac"))
    assert env(objs)["MLROLLOUT_WEBHOOK_SECRET"] == {
        "name": "MLROLLOUT_WEBHOOK_SECRET",
        "valueFrom": {"secretKeyRef": {"name": "mlflow-webhook", "key": "hmac"}},
    }
    assert not by_kind(objs, "Secret")  # the chart never holds the secret itself
    result = helm("template", "rel", str(CHART), "--set", "webhook.secret=s3cr3t", check=False)
    assert result.returncode != 0  # no such value: the schema refuses it rather than render it


def test_jobs_service_account_in_each_job_namespace() -> None:
    objs = rendered("everything")
    sas = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in by_kind(objs, "ServiceAccount")}
    assert {("ml", "mlrollout-job"), ("ml-staging", "mlrollout-job")} <= sas
    for role in by_kind(objs, "Role"):
        assert flatten(role["rules"]) == JOB_RULES
    default_sas = {
        (s["metadata"]["namespace"], s["metadata"]["name"])
        for s in by_kind(rendered("default"), "ServiceAccount")
    }
    assert default_sas == {("mlr", "rel-mlrollout"), ("mlr", "mlrollout-job")}


def test_without_rbac_nothing_but_the_workload() -> None:
    objs = rendered("no-rbac")
    assert {o["kind"] for o in objs} == {"Deployment", "Service"}
    spec = by_kind(objs, "Deployment")[0]["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "existing"


def test_optional_objects_only_when_enabled() -> None:
    kinds = {o["kind"] for o in rendered("default")}
    assert not kinds & {"ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy"}
    objs = rendered("everything")
    (sm,) = by_kind(objs, "ServiceMonitor")
    svc = by_kind(objs, "Service")[0]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    (pdb,) = by_kind(objs, "PodDisruptionBudget")
    dep = by_kind(objs, "Deployment")[0]
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    (np,) = by_kind(objs, "NetworkPolicy")
    assert np["spec"]["podSelector"] == dep["spec"]["selector"]
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {(p["port"], p["protocol"]) for r in np["spec"]["egress"] for p in r["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP")} <= egress_ports
    assert np["spec"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_pdb_min_available_wins_when_set() -> None:
    objs = docs(render("podDisruptionBudget.enabled=true", "podDisruptionBudget.minAvailable=1"))
    (pdb,) = by_kind(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]


def test_cluster_scoped_names_are_unique_per_release_namespace() -> None:
    a = {o["metadata"]["name"] for o in docs(render(namespace="one")) if o["kind"].startswith("Cluster")}
    b = {o["metadata"]["name"] for o in docs(render(namespace="two")) if o["kind"].startswith("Cluster")}
    assert a and not a & b


def test_chart_crd_is_the_crd() -> None:
    assert CRD_FILE.is_file(), "crds/ has no CRD yet"
    copy = CHART / "crds" / CRD_FILE.name
    assert copy.read_bytes() == CRD_FILE.read_bytes(), "chart CRD is stale: run python charts/sync.py"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(
        p.name for p in CRD_FILE.parent.glob("*.yaml")
    )


def test_generated_files_are_in_sync() -> None:
    sync = sync_module()
    problems = sync.stale(sync.expected())
    assert not problems, "\n".join(problems) + "\nrun: python charts/sync.py"


def test_chart_renders_the_crd_with_include_crds() -> None:
    assert CRD_FILE.is_file(), "crds/ has no CRD yet"
    crds = by_kind(docs(render(include_crds=True)), "CustomResourceDefinition")
    assert [c["metadata"]["name"] for c in crds] == ["modeldeployments.mlrollout.io"]
    assert str(ROOT) not in render(include_crds=True)


def test_the_scan_derives_rights_from_client_calls() -> None:
    src = """
APPLY = "application/apply-patch+yaml"
TABLE = {"Deployment": ("apps", "v1", "deployments"), "CronJob": ("batch", "v1", "cronjobs")}

def apply(api, m, kind):
    group, version, plural = TABLE[kind]
    api.patch_namespaced_custom_object(group, version, "ns", plural, "n", m, _content_type=APPLY)

def others(core, objs):
    core.delete_namespaced_job("n", "ns")
    core.read_namespaced_pod_log("n", "ns")
    objs.patch_namespaced_custom_object_status(names.GROUP, "v1", "ns", names.PLURAL, "n", {})
    objs.list_namespaced_custom_object(group="autoscaling", version="v2", namespace="ns", plural="hpas")
"""
    assert api_usage.scan_source(src) == {
        ("apps", "deployments"): {"patch", "create"},
        ("batch", "cronjobs"): {"patch", "create"},
        ("batch", "jobs"): {"delete"},
        ("", "pods/log"): {"get"},
        ("mlrollout.io", "modeldeployments/status"): {"patch"},
        ("autoscaling", "hpas"): {"list"},
    }


@pytest.mark.parametrize(
    "src",
    [
        "def f(api, g):\n    api.list_namespaced_custom_object(g, 'v1', 'ns', 'things')",
        "def f(api):\n    api.create_namespaced_thing_nobody_knows('ns', {})",
        "def f(api, k):\n    p = api.patch_namespaced_service if k else api.patch_namespaced_pod\n    p('n')",
    ],
)
def test_the_scan_refuses_what_it_cannot_resolve(src: str) -> None:
    with pytest.raises(api_usage.Unresolved):
        api_usage.scan_source(src)


def test_the_operator_code_is_scanned() -> None:
    used = api_usage.operator_rights()
    # The executor's apply, read-back and status write are found: the scan cannot pass by seeing nothing.
    assert {"patch", "create", "list", "delete"} <= used[("apps", "deployments")]
    assert used[("mlrollout.io", "modeldeployments/status")] == {"patch"}
