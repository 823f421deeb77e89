"""Run a job config: validate, resolve the model, start or join Ray, run, record.

Everything that can fail on configuration fails here, before any work: unknown method or
engine (listing the known ones), unknown or mistyped fields (named), a model that cannot be
found (saying what was looked for), missing inputs, an unreachable endpoint.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any

from synth_ray.config import ConfigError, apply_overrides, load_yaml, validate
from synth_ray.engines import build_engine
from synth_ray.io.layout import OutputLayout
from synth_ray.job import GenerationJobConfig, JobConfig, JobContext, load_all_jobs
from synth_ray.models import ModelNotFoundError, resolve_model
from synth_ray.runinfo import RunRecord

log = logging.getLogger(__name__)


def load_job_config(
    path: str | None = None, overrides: list[str] | None = None, data: dict[str, Any] | None = None
) -> JobConfig:
    """YAML file (or dict) + ``--set`` overrides -> the method's validated config."""
    raw = dict(data) if data is not None else load_yaml(path)  # type: ignore[arg-type]
    raw = apply_overrides(raw, overrides or [])
    source = str(path or "config")
    method = raw.get("method")
    jobs = load_all_jobs()
    if not method:
        raise ConfigError(f"{source}: field 'method' is required; known: {', '.join(jobs.names())}")
    try:
        method_cls = jobs.get(str(method))
    except KeyError as exc:
        raise ConfigError(f"{source}: field 'method': {exc.args[0]}") from None
    return validate(method_cls.config_cls, raw, source)


def init_local_ray(num_cpus: int | None = None, **kwargs: Any) -> None:
    """Start an embedded Ray for this process.

    - ``address="local"``: always a new Ray, never a cluster that ``ray start`` left running
      on this machine (plain ``ray.init()`` would attach to it).
    - 8 logical CPUs at least: on 2 cores a Ray Data LLM pipeline of several actor stages can
      deadlock with fewer (seen with 4: four stage actors and a read task).
    - workers at nice 0 (``RAY_worker_niceness``, default 15): here the workers (the vLLM
      engine above all) do the job's work, and at nice 15 the driver and Ray's own daemons
      preempt them on a small machine (benchmarks/generation_overhead.py).
    """
    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        address="local",
        num_cpus=num_cpus or max(8, os.cpu_count() or 1),
        include_dashboard=False,
        **kwargs,
    )


def init_ray(config: JobConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        init_local_ray(config.ray.num_cpus)


def prepare(config: JobConfig) -> tuple[Any, Any, Any]:
    """Pre-flight checks needing no Ray: (method, model, engine). A job whose config has no
    ``engine`` (training) gets none."""
    method = load_all_jobs().get(config.method)()
    method.preflight(config)
    generates = isinstance(config, GenerationJobConfig)
    try:
        if generates and config.engine.type == "openai":  # a served name: checked by preflight
            from synth_ray.models.resolve import ResolvedModel

            model = ResolvedModel(config.model, config.model, "served")
        else:
            model = resolve_model(config.model)
    except ModelNotFoundError as exc:
        raise ConfigError(f"field 'model': {exc}") from None
    if not generates:
        return method, model, None
    engine = build_engine(config.engine, model)
    engine.use_lifetime(method.engine_lifetime)
    try:
        engine.preflight()
    except RuntimeError as exc:
        raise ConfigError(str(exc)) from None
    return method, model, engine


def run_job(config: JobConfig) -> dict[str, Any]:
    """Run a validated job; returns the run record written to ``run.json``."""
    method, model, engine = prepare(config)
    layout = OutputLayout.at(config.output_dir)
    layout.make()
    record = RunRecord(layout, config.model_dump(mode="json"))
    record.extra["model"] = {"spec": model.spec, "source": model.source, "kind": model.kind}
    # Recorded as "running" before any work: a run killed before its end (SIGKILL, a lost node)
    # leaves run.json saying so, never the previous run's "succeeded" beside outputs it was
    # rewriting (WRAP's mix/), and its runs/<run_id>.json in the history.
    record.write()
    init_ray(config)
    ctx = JobContext(config=config, layout=layout, record=record, model=model, engine=engine)
    try:
        method.run(ctx)
        with record.stage("rejects"):
            record.count_rejects()  # counts by reason and by source file (or stage)
        record.status = "succeeded"
    except BaseException as exc:
        record.status = "failed"
        record.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise
    finally:
        if engine is not None:
            engine.close()
            record.engine_starts += engine.starts  # a loop adds the engines it starts itself
        record.write()
    return record.to_dict()
