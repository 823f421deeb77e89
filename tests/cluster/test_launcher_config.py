"""cluster/launcher-aws.yaml against Ray's own cluster launcher schema (no cloud needed)."""

from __future__ import annotations

import copy
import json
import os

import yaml

from tests.conftest import REPO

CONFIG = REPO / "cluster" / "launcher-aws.yaml"


def _schema() -> dict:
    import ray.autoscaler

    return json.loads(
        open(os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")).read()
    )


def _errors(cfg: dict) -> list[str]:
    import jsonschema

    v = jsonschema.Draft7Validator(_schema())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(cfg)]


def test_launcher_config_matches_rays_schema():
    cfg = yaml.safe_load(CONFIG.read_text())
    assert _errors(cfg) == []
    # And Ray's own check, on the config as `ray up` prepares it (defaults filled in).
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cfg)))


def test_launcher_config_shape():
    cfg = yaml.safe_load(CONFIG.read_text())
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}  # the head schedules no work
    assert any("--num-cpus=0" in c for c in cfg["head_start_ray_commands"])
    gpu = types["gpu"]
    assert gpu["min_workers"] == 0 and gpu["resources"]["GPU"] >= 1
    assert cfg["docker"]["image"].endswith("synth-ray:0.1.0")
    assert "-e RAY_AUTH_MODE=token" in cfg["docker"]["run_options"]
    assert "--dashboard-host=127.0.0.1" in " ".join(cfg["head_start_ray_commands"])


def test_launcher_schema_check_rejects_a_broken_config():
    cfg = yaml.safe_load(CONFIG.read_text())
    bad = copy.deepcopy(cfg)
    bad["max_worker"] = bad.pop("max_workers")  # misspelt top-level field
    assert any("max_worker" in e for e in _errors(bad))
    bad = copy.deepcopy(cfg)
    bad["available_node_types"]["gpu"]["min_workers"] = "none"  # wrong type
    assert _errors(bad)
