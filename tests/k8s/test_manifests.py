"""Every manifest in k8s/ against the schemas Kubernetes would apply, offline.

- ``ray.io/v1`` kinds (RayCluster, RayJob, RayService): the ``openAPIV3Schema`` of the KubeRay
  CRDs vendored in ``tests/k8s/kuberay-crds/`` (KubeRay 1.7, Apache-2.0; see its README), with the PyPI ``jsonschema`` validator, STRICTLY: the API
  server prunes fields a structural schema does not declare (and ``kubectl apply`` with strict
  field validation refuses them), so every object schema that neither lists
  ``additionalProperties`` nor sets ``x-kubernetes-preserve-unknown-fields`` gets
  ``additionalProperties: false`` here: a misspelt or misplaced field fails the test instead of
  vanishing on the server.
- core kinds (Namespace, ConfigMap, Secret, NetworkPolicy, PersistentVolumeClaim), the root
  ``metadata`` of every object, and the core objects KubeRay embeds (pod templates, the Serve
  Service): the Kubernetes OpenAPI schemas shipped by the PyPI package ``kubernetes-validate``,
  in its strict mode (unknown fields rejected).
Then what the schemas cannot say: the head schedules no work, autoscaling from 0, token auth,
requests/limits on every container, no LoadBalancer, NetworkPolicy ports, RayJob entrypoints
that name job configs which parse, and the RayService's Serve config (Ray's own schema, and the
scoring app's own config model of ``synth_ray.serve``).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

K8S = REPO / "k8s"
CRDS = Path(__file__).resolve().parent / "kuberay-crds"
IMAGE = "registry.example.com/synth-ray:0.1.0"
RAY_KINDS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}
SERVE_TOKEN_DIR = "/etc/synth-ray/serve-token"


# ------------------------------------------------------------------ loading


def _manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((str(path.relative_to(REPO)), doc))
    return docs


MANIFESTS = _manifests()


def _ids(items):
    return [f"{src}:{d.get('kind')}/{d.get('metadata', {}).get('name')}" for src, d in items]


def _of_kind(*kinds: str) -> list[dict]:
    return [d for _, d in MANIFESTS if d.get("kind") in kinds]


def _one(kind: str, name: str) -> dict:
    found = [d for d in _of_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


# ------------------------------------------------------------------ validators


def _strict(schema, root: bool = True):
    """A copy of a CRD schema in which undeclared fields are errors (see module doc)."""
    if isinstance(schema, list):
        return [_strict(s, False) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: (v if k in ("enum", "required", "default", "example") else _strict(v, False))
        for k, v in schema.items()
        if k != "properties"  # a map of names to schemas, not a schema: below
    }
    if "properties" in schema:
        out["properties"] = {k: _strict(v, False) for k, v in schema["properties"].items()}
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object and not preserve and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    if root:  # ObjectMeta is declared as a bare object; it is checked against ObjectMeta apart
        out["properties"]["metadata"] = {"type": "object"}
    return out


@functools.cache
def _crd_validator(kind: str, version: str = "v1"):
    import jsonschema

    text = (CRDS / f"ray.io_{RAY_KINDS[kind]}.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 1-1.4 MB each
    assert crd["spec"]["names"]["kind"] == kind
    (ver,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(ver["schema"]["openAPIV3Schema"])
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


def crd_errors(doc: dict) -> list[str]:
    group, _, version = doc["apiVersion"].partition("/")
    assert group == "ray.io" and version == "v1", doc["apiVersion"]
    v = _crd_validator(doc["kind"], version)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]


@functools.cache
def _k8s_version() -> str:
    from kubernetes_validate import utils

    return utils.latest_version()


def core_errors(doc: dict) -> list[str]:
    """Strict validation of a core Kubernetes object by kubernetes-validate (all errors)."""
    from kubernetes_validate import utils

    try:
        utils.validate(doc, _k8s_version(), strict=True)
    except utils.ValidationError as e:
        return [f"{'.'.join(map(str, e.path))}: {e.message}"]
    return []


def _as_core(kind: str, name: str, **body) -> dict:
    api = {"Service": "v1", "PodTemplate": "v1", "ConfigMap": "v1"}[kind]
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}, **body}


# ------------------------------------------------------------------ walking Ray objects


def _cluster_specs() -> list[tuple[str, dict]]:
    """(owner, RayCluster spec) of every Ray cluster the manifests create."""
    out = []
    for d in _of_kind("RayCluster"):
        out.append((f"RayCluster/{d['metadata']['name']}", d["spec"]))
    for d in _of_kind("RayJob"):
        out.append((f"RayJob/{d['metadata']['name']}", d["spec"]["rayClusterSpec"]))
    for d in _of_kind("RayService"):
        out.append((f"RayService/{d['metadata']['name']}", d["spec"]["rayClusterConfig"]))
    return out


def _pod_templates(doc: dict) -> list[tuple[str, dict]]:
    """(where, pod template) of every pod a manifest makes KubeRay create."""
    specs = {
        "RayCluster": lambda d: d["spec"],
        "RayJob": lambda d: d["spec"]["rayClusterSpec"],
        "RayService": lambda d: d["spec"]["rayClusterConfig"],
    }
    if doc["kind"] not in specs:
        return []
    cs = specs[doc["kind"]](doc)
    out = [("head", cs["headGroupSpec"]["template"])]
    out += [(f"worker:{g['groupName']}", g["template"]) for g in cs["workerGroupSpecs"]]
    if doc["kind"] == "RayJob" and "submitterPodTemplate" in doc["spec"]:
        out.append(("submitter", doc["spec"]["submitterPodTemplate"]))
    return out


def _walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}", k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


# ================================================================== schema validation


def test_manifests_found():
    kinds = sorted(d["kind"] for _, d in MANIFESTS)
    for kind in ("RayCluster", "RayJob", "RayService", "NetworkPolicy", "Secret", "ConfigMap"):
        assert kind in kinds, kinds
    assert len(_of_kind("RayJob")) == 3
    for _, d in MANIFESTS:
        assert d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"), d
        assert d["metadata"].get("namespace") in (None, "synth-ray"), d["metadata"]
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == "synth-ray", d["metadata"]


def test_every_manifest_has_an_apply_command_in_its_header():
    for path in sorted(K8S.rglob("*.yaml")):
        head = path.read_text(encoding="utf-8").split("\napiVersion:", 1)[0]
        assert "kubectl apply -f k8s/" in head, (
            f"{path}: no `kubectl apply -f k8s/...` in the header"
        )


@pytest.mark.parametrize(
    "src,doc",
    [m for m in MANIFESTS if m[1]["kind"] in RAY_KINDS],
    ids=_ids([m for m in MANIFESTS if m[1]["kind"] in RAY_KINDS]),
)
def test_ray_objects_validate_against_the_kuberay_crds(src, doc):
    errors = crd_errors(doc)
    assert not errors, f"{src}: {doc['kind']} does not validate against the CRD:\n" + "\n".join(
        errors
    )


@pytest.mark.parametrize(
    "src,doc",
    [m for m in MANIFESTS if m[1]["kind"] not in RAY_KINDS],
    ids=_ids([m for m in MANIFESTS if m[1]["kind"] not in RAY_KINDS]),
)
def test_core_objects_validate_against_the_kubernetes_schemas(src, doc):
    errors = core_errors(doc)
    assert not errors, f"{src}: {doc['kind']} does not validate:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    "src,doc",
    [m for m in MANIFESTS if m[1]["kind"] in RAY_KINDS],
    ids=_ids([m for m in MANIFESTS if m[1]["kind"] in RAY_KINDS]),
)
def test_objects_embedded_in_ray_objects_validate_as_core_objects(src, doc):
    """ObjectMeta, pod templates and the Serve Service against Kubernetes' own schemas (the CRDs
    inline them, but this is a second, independent check)."""
    name = doc["metadata"]["name"]
    errors = core_errors(_as_core("ConfigMap", name, metadata=doc["metadata"]))
    for where, tmpl in _pod_templates(doc):
        errors += [
            f"{where}: {e}" for e in core_errors(_as_core("PodTemplate", name, template=tmpl))
        ]
    if doc["kind"] == "RayService" and "serveService" in doc["spec"]:
        svc = copy.deepcopy(doc["spec"]["serveService"])
        svc.setdefault("metadata", {}).setdefault("name", name)
        errors += core_errors({"apiVersion": "v1", "kind": "Service", **svc})
    assert not errors, f"{src}: " + "\n".join(errors)


def test_validators_reject_broken_manifests():
    """The strict CRD validation and kubernetes-validate really refuse bad manifests."""
    rc = copy.deepcopy(_one("RayCluster", "synth-ray"))
    assert crd_errors(rc) == []

    typo = copy.deepcopy(rc)  # an unknown field (misspelt) deep in the spec
    typo["spec"]["headGroupSpec"]["rayStartParam"] = typo["spec"]["headGroupSpec"].pop(
        "rayStartParams"
    )
    assert any("rayStartParam" in e for e in crd_errors(typo)), crd_errors(typo)

    typo = copy.deepcopy(rc)  # an unknown field inside a container of a pod template
    typo["spec"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0]["resource"] = {}
    assert any("resource" in e for e in crd_errors(typo)), crd_errors(typo)

    wrong = copy.deepcopy(rc)  # a wrong type
    wrong["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "eight"
    assert any("maxReplicas" in e for e in crd_errors(wrong)), crd_errors(wrong)

    wrong = copy.deepcopy(rc)  # an enum
    wrong["spec"]["authOptions"]["mode"] = "password"
    assert any("authOptions.mode" in e for e in crd_errors(wrong)), crd_errors(wrong)

    wrong = copy.deepcopy(rc)  # a malformed quantity
    wrong["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
        "memory"
    ] = "16 gigs"
    assert crd_errors(wrong)

    job = copy.deepcopy(_one("RayJob", "synth-ray-wrap"))
    del job["spec"]["rayClusterSpec"]["headGroupSpec"]  # a required field
    assert any("headGroupSpec" in e for e in crd_errors(job)), crd_errors(job)

    np = copy.deepcopy(_of_kind("NetworkPolicy")[0])
    assert core_errors(np) == []
    np["spec"]["ingress"][0]["form"] = np["spec"]["ingress"][0].pop("from")  # unknown field
    assert core_errors(np)
    sec = copy.deepcopy(_of_kind("Secret")[0])
    sec["stringData"] = {"auth_token": 42}  # wrong type
    assert core_errors(sec)
    pod = _as_core(
        "PodTemplate", "x", template={"spec": {"containers": [{"name": "c", "imag": "i"}]}}
    )
    assert core_errors(pod)


# ================================================================== the clusters


@pytest.mark.parametrize("owner,spec", _cluster_specs(), ids=[o for o, _ in _cluster_specs()])
def test_ray_cluster_shape(owner, spec):
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0", f"{owner}: the head must schedule no work"
    assert head.get("serviceType") == "ClusterIP", owner
    assert spec["rayVersion"] == "2.60.0", owner
    # Ray token auth from the Secret synth-ray-auth (KubeRay injects it in every Ray container).
    assert spec["authOptions"] == {"mode": "token", "secretName": "synth-ray-auth"}, owner
    # Autoscaler v2, with requests/limits on its sidecar.
    assert spec["enableInTreeAutoscaling"] is True, owner
    auto = spec["autoscalerOptions"]
    assert auto.get("version") == "v2" and auto.get("idleTimeoutSeconds"), owner
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(auto["resources"][kind]), f"{owner}: autoscaler {kind}"
    (head_c,) = [c for c in head["template"]["spec"]["containers"] if c["name"] == "ray-head"]
    assert {"name": "RAY_enable_autoscaler_v2", "value": "1"} in head_c.get("env", []), owner
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}, owner
    for name, g in groups.items():
        assert g["template"]["spec"].get("restartPolicy") == "Never", (
            f"{owner}/{name}: autoscaler v2"
        )
        assert g.get("idleTimeoutSeconds"), f"{owner}/{name}"
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], f"{owner}/{name}"
    gpu = groups["gpu"]
    assert gpu["minReplicas"] == 0 and gpu["replicas"] == 0, f"{owner}: GPU pool scales from 0"
    if not owner.startswith("RayService"):  # the scoring service keeps one Ingress node
        assert groups["cpu"]["minReplicas"] == 0 and groups["cpu"]["replicas"] == 0, owner
    for c in gpu["template"]["spec"]["containers"]:
        assert c["resources"]["limits"].get("nvidia.com/gpu") == "1", owner
        assert c["resources"]["requests"].get("nvidia.com/gpu") == "1", owner


@pytest.mark.parametrize("src,doc", MANIFESTS, ids=_ids(MANIFESTS))
def test_every_container_has_requests_and_limits(src, doc):
    for where, tmpl in _pod_templates(doc):
        spec = tmpl["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(kind, {})), (
                    f"{src} {where}/{c['name']}: {kind}"
                )
            assert c["image"] == IMAGE, f"{src} {where}/{c['name']}: {c['image']}"
    for path, key, value in _walk(doc):  # any other container anywhere (e.g. a sidecar)
        if key == "containers":
            for c in value:
                assert c.get("resources", {}).get("requests") and c["resources"].get("limits"), (
                    src,
                    path,
                )


def test_no_load_balancer_anywhere():
    for src, doc in MANIFESTS:
        for path, key, value in _walk(doc):
            assert value != "LoadBalancer", f"{src}: {path} = LoadBalancer"
            if key in ("serviceType", "type") and path.endswith(("serviceType", "spec.type")):
                assert value in ("ClusterIP", "Opaque"), f"{src}: {path} = {value}"
        assert "LoadBalancer" not in yaml.safe_dump(doc), src


def test_no_hard_coded_buckets_or_locations_in_ray_objects():
    """Locations are parameters (the ConfigMap), never literal in the Ray objects."""
    for src, doc in MANIFESTS:
        if doc["kind"] not in RAY_KINDS:
            continue
        for path, _, value in _walk(doc):
            if isinstance(value, str):
                assert not re.search(r"\b(s3|gs|gcs|az|abfs)://", value), f"{src}: {path}: {value}"
        for token in shlex.split(doc["spec"].get("entrypoint", "")):
            assert "://" not in token and not token.split("=", 1)[-1].startswith("/mnt"), (
                src,
                token,
            )


# ================================================================== network


def _rules_for_port(policy: dict, port: int) -> list[dict]:
    out = []
    for rule in policy["spec"].get("ingress", []):
        ports = rule.get("ports")
        if ports is None or any(p.get("port") == port for p in ports):
            out.append(rule)
    return out


def _selects_ray_pods(selector: dict) -> bool:
    return {"key": "ray.io/node-type", "operator": "Exists"} in selector.get("matchExpressions", [])


def test_network_policy_ports():
    policies = {p["metadata"]["name"]: p for p in _of_kind("NetworkPolicy")}
    control = policies["synth-ray-ray-control"]
    assert _selects_ray_pods(control["spec"]["podSelector"])
    assert control["spec"]["policyTypes"] == ["Ingress"]
    # Ray node to Ray node: a rule with no port list, from Ray pods only.
    internal = [r for r in control["spec"]["ingress"] if "ports" not in r]
    assert len(internal) == 1 and all(
        set(peer) == {"podSelector"} and _selects_ray_pods(peer["podSelector"])
        for peer in internal[0]["from"]
    ), internal
    for port in (8265, 6379, 10001):
        for policy in policies.values():
            for rule in _rules_for_port(policy, port):
                for peer in rule["from"]:
                    assert "ipBlock" not in peer, (policy["metadata"]["name"], port, peer)
                    if "namespaceSelector" in peer:  # only the KubeRay operator, only 8265
                        assert port == 8265 and peer == {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kuberay-system"}
                            },
                            "podSelector": {
                                "matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}
                            },
                        }, (port, peer)
                    else:
                        assert set(peer) == {"podSelector"}, (port, peer)  # this namespace only
        assert any(
            any(peer == {"podSelector": {}} for peer in r["from"]) and r.get("ports")
            for r in _rules_for_port(control, port)
        ), f"port {port} not open to the namespace's pods (job submitters)"

    scoring = policies["synth-ray-scoring-clients"]
    (rule,) = scoring["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"synth-ray/scoring-client": "true"}}}
    ]
    # It selects exactly the scoring service's pods, and those are Ray pods (control policy).
    label = scoring["spec"]["podSelector"]["matchLabels"]
    svc = _one("RayService", "synth-ray-scoring")
    for where, tmpl in _pod_templates(svc):
        assert label.items() <= tmpl["metadata"]["labels"].items(), where
    for doc in _of_kind("RayCluster", "RayJob"):
        for where, tmpl in _pod_templates(doc):
            assert not label.items() <= tmpl.get("metadata", {}).get("labels", {}).items(), where
    # 8000 is open to other namespaces nowhere else.
    for policy in policies.values():
        for r in _rules_for_port(policy, 8000):
            for peer in r["from"]:
                assert "ipBlock" not in peer
                if "namespaceSelector" in peer:
                    assert policy is scoring, policy["metadata"]["name"]


# ================================================================== RayJobs


def _locations() -> dict[str, str]:
    return _one("ConfigMap", "synth-ray-locations")["data"]


def _entrypoint_argv(job: dict) -> list[str]:
    """The entrypoint as the shell runs it, with the ConfigMap's variables expanded."""
    env = _locations()
    text = job["spec"]["entrypoint"]
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    missing = used - set(env)
    assert not missing, (
        f"{job['metadata']['name']}: entrypoint uses {missing}, not in the ConfigMap"
    )
    return shlex.split(re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env[m.group(1)], text))


@pytest.mark.parametrize(
    "name,config",
    [
        ("synth-ray-wrap", "jobs/wrap.yaml"),
        ("synth-ray-self-instruct", "jobs/self_instruct.yaml"),
        ("synth-ray-sft", "jobs/sft.yaml"),
    ],
)
def test_rayjob_entrypoint_names_a_job_config_that_parses(name, config):
    from synth_ray.runner import load_job_config

    job = _one("RayJob", name)
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    assert spec["submissionMode"] == "K8sJobMode"
    assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"working_dir": "/home/ray/synth-ray"}

    argv = _entrypoint_argv(job)
    assert argv[:3] == ["synth-ray", "run", config], argv
    assert (REPO / config).is_file()
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert len(sets) * 2 + 3 == len(argv), f"only --set overrides after the config: {argv}"
    cfg = load_job_config(REPO / config, sets)  # what `synth-ray validate` does; raises if invalid
    env = _locations()
    assert cfg.output_dir == next(
        v for k, v in env.items() if k.endswith("_OUTPUT") and f"${k}" in spec["entrypoint"]
    )
    assert "input" not in type(cfg).model_fields or "input=$" in spec["entrypoint"]

    # The variables exist where the entrypoint is expanded: the submitter and the head.
    for where, tmpl in _pod_templates(job):
        if where in ("head", "submitter"):
            (c,) = tmpl["spec"]["containers"]
            assert {"configMapRef": {"name": "synth-ray-locations"}} in c.get("envFrom", []), where
    # The submitter talks to a token-protected head.
    sub = spec["submitterPodTemplate"]["spec"]["containers"][0]
    envs = {e["name"]: e for e in sub["env"]}
    assert envs["RAY_AUTH_MODE"]["value"] == "token"
    assert envs["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "synth-ray-auth",
        "key": "auth_token",
    }


def test_synth_ray_validate_accepts_the_rayjob_commands():
    """The CLI itself (``synth-ray validate`` with the same --set flags) on one of them."""
    import subprocess
    import sys

    argv = _entrypoint_argv(_one("RayJob", "synth-ray-wrap"))
    exe = Path(sys.executable).parent / "synth-ray"
    p = subprocess.run(
        [str(exe), "validate", *argv[2:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert _locations()["SYNTH_RAY_WRAP_OUTPUT"] in p.stdout


# ================================================================== RayService


def _serve_config() -> dict:
    return yaml.safe_load(_one("RayService", "synth-ray-scoring")["spec"]["serveConfigV2"])


def test_rayservice_serve_config_is_valid_for_ray_serve():
    from ray.serve.schema import ServeDeploySchema

    cfg = _serve_config()
    ServeDeploySchema.model_validate(cfg) if hasattr(ServeDeploySchema, "model_validate") else (
        ServeDeploySchema.parse_obj(cfg)
    )
    (app,) = cfg["applications"]
    assert app["name"] == "scoring" and app["route_prefix"] == "/"
    assert app["import_path"] == "synth_ray.serve.app:build_app"
    assert cfg["http_options"]["port"] == 8000
    deps = {d["name"]: d for d in app["deployments"]}
    assert set(deps) == {"Ingress", "RewardModel", "Judge"}
    for name, d in deps.items():
        for key in ("autoscaling_config", "max_ongoing_requests", "max_queued_requests"):
            assert key in d, (name, key)
    args = app["args"]
    assert {"reward", "judge", "limits", "auth"} <= set(args)
    assert args["reward"]["model"] and args["judge"]["model"]
    assert args["auth"]["token_file"] == f"{SERVE_TOKEN_DIR}/token"


def test_rayservice_mounts_the_serve_token_everywhere():
    svc = _one("RayService", "synth-ray-scoring")
    for where, tmpl in _pod_templates(svc):
        spec = tmpl["spec"]
        vols = {v["name"]: v for v in spec["volumes"]}
        (c,) = spec["containers"]
        mounts = [m for m in c["volumeMounts"] if m["mountPath"] == SERVE_TOKEN_DIR]
        assert len(mounts) == 1 and mounts[0].get("readOnly"), where
        assert vols[mounts[0]["name"]]["secret"]["secretName"] == "synth-ray-serve-token", where
    assert "token" in _one("Secret", "synth-ray-serve-token")["stringData"]
    head = svc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"containerPort": 8000, "name": "serve"} in head["ports"]  # KubeRay's serve Service port
    assert svc["spec"]["serveService"]["spec"]["type"] == "ClusterIP"


def test_rayservice_matches_the_serve_app_contract():
    """Same application as serve/config.yaml, and args its config model accepts."""
    from synth_ray.serve.config import ServeAppConfig

    serve_yaml = REPO / "serve" / "config.yaml"

    (local,) = yaml.safe_load(serve_yaml.read_text())["applications"]
    (mine,) = _serve_config()["applications"]
    assert mine["import_path"] == local["import_path"]
    assert mine["name"] == local["name"] and mine["route_prefix"] == local["route_prefix"]
    assert {d["name"] for d in mine["deployments"]} == {d["name"] for d in local["deployments"]}
    assert set(mine["args"]) == set(local["args"])
    ServeAppConfig.model_validate(mine["args"])  # raises on an unknown or mistyped arg
