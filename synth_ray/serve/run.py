"""``synth-ray serve CONFIG``: validate a Serve config file, then deploy it as ``serve run`` does.

Before anything starts, the whole file is checked: Serve's own schema (``ServeDeploySchema``)
and, for applications of ours (``import_path: synth_ray.serve.app:build_app``), the app args
(``ServeAppConfig``) and the models they name (``tiny``/``tiny-reward`` are built here, so
replicas find them in the cache). An error names the application and field.

Then: join the Ray cluster at ``RAY_ADDRESS`` (or ``--address``) or start an embedded local Ray
(8 logical CPUs, as the jobs do), start Serve with the file's ``http_options`` (``--host`` and
``--port`` override them), deploy the applications (``deploy_apps``, the call ``serve run``
makes for a config file) and wait until they are RUNNING.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import yaml

from synth_ray.config import ConfigError, format_validation_error

OUR_IMPORT_PATH = "synth_ray.serve.app:build_app"


def load_serve_config(
    path: str | Path,
    host: str | None = None,
    port: int | None = None,
    set_args: list[str] | None = None,
) -> dict[str, Any]:
    """The Serve config file as a dict, overrides applied, fully validated (``ConfigError``)."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    from synth_ray.config import apply_overrides
    from synth_ray.serve.config import ServeAppConfig

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read a YAML Serve config: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'applications:'")
    data = copy.deepcopy(data)
    http = data.setdefault("http_options", {})
    if host:
        http["host"] = host
    if port:
        http["port"] = port
    try:
        ServeDeploySchema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    for i, app in enumerate(data.get("applications", [])):
        if app.get("import_path") != OUR_IMPORT_PATH:
            continue
        args = app.setdefault("args", {}) or {}
        if set_args:
            apply_overrides(args, set_args)
        app["args"] = args
        try:
            cfg = ServeAppConfig.model_validate(args)
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, f"{path}: applications.{i} ({app.get('name')}) args")
            ) from None
        _resolve_models(cfg, f"{path}: applications.{i} ({app.get('name')}) args")
        # A scorer switched off (`reward: null`, `judge: null`) has no deployment: drop its
        # options, or Serve refuses the whole application ("Deployment ... does not exist").
        absent = {
            n for n, part in (("RewardModel", cfg.reward), ("Judge", cfg.judge)) if part is None
        }
        if absent and app.get("deployments"):
            app["deployments"] = [d for d in app["deployments"] if d.get("name") not in absent]
    return data


def _resolve_models(cfg, where: str) -> None:
    from synth_ray.models.resolve import ModelNotFoundError, resolve_model

    for field, part in (("reward", cfg.reward), ("judge", cfg.judge)):
        if part is None:
            continue
        try:
            resolve_model(part.model)
        except ModelNotFoundError as exc:
            raise ConfigError(f"{where}: field '{field}.model': {exc}") from None


def deploy(config: dict[str, Any], address: str | None = None, timeout_s: float = 600) -> str:
    """Start Serve and deploy the (validated) config; returns the base URL once RUNNING."""
    import os

    import ray
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    from synth_ray.runner import init_local_ray

    schema = ServeDeploySchema.model_validate(config)
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, namespace="serve")
        else:
            init_local_ray(namespace="serve")
    serve.start(http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location)
    from ray.serve.context import _get_global_client

    _get_global_client().deploy_apps(schema, _blocking=False)
    wait_running([a.name for a in schema.applications], timeout_s)
    return f"http://{schema.http_options.host}:{schema.http_options.port}"


def wait_running(names: list[str], timeout_s: float) -> None:
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        states = {n: (apps[n].status if n in apps else "NOT_STARTED") for n in names}
        if all(s == "RUNNING" for s in states.values()):
            return
        failed = {n: apps[n].message for n, s in states.items() if s == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError(f"Serve application(s) failed to deploy: {failed}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve applications not RUNNING after {timeout_s:.0f} s: {states}")
        time.sleep(1)
