"""Training called as a function (what a loop's train stage calls), not only as a job.

``train_model(kind, data, base_model, output_dir, settings)`` runs the trainer of ``method:
kind`` (sft, dpo, reward, pretrain) on the Ray the caller has, with the same code path as the
job: a Ray Data tokenize stage, Ray Train workers, checkpoints under ``output_dir/train`` (a
killed call resumes from them), the model in ``output_dir/model/``, the record in
``output_dir/run.json``. A call whose model is already complete trains nothing and returns the
metrics of the run that made it. Inputs are read as the job reads them: every bad record or file
is a reject in ``output_dir/rejects/`` (counted by reason and by source in ``run.json``), and
only an input with no usable row raises (``synth_ray.train.data.TrainingInputError``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from synth_ray.config import ConfigError, format_validation_error
from synth_ray.io import fs
from synth_ray.io.layout import OutputLayout
from synth_ray.job import JobContext, load_all_jobs
from synth_ray.models.resolve import ModelNotFoundError, resolve_model
from synth_ray.runinfo import RunRecord
from synth_ray.stages.records import write_table_dir


@dataclass
class TrainResult:
    model_dir: str  # a Hugging Face folder the engines load
    # run.json's counts.training, its reject counts (rejected, rejects_by_reason/_source), dpo
    metrics: dict[str, Any] = field(default_factory=dict)
    reused: bool = False  # the model was complete already: nothing trained


def _previous_metrics(layout: OutputLayout) -> dict[str, Any]:
    try:
        prev = json.loads(fs.read_bytes(layout.run_json))
    except (OSError, FileNotFoundError, ValueError):
        return {}
    return (prev.get("counts") or {}).get("training") or {}


def train_model(
    kind: str,
    data: str | list[dict[str, Any]],
    base_model: str,
    output_dir: str,
    settings: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``base_model`` (any model spec) on ``data`` (a dataset path the trainers read, or
    rows, written first to ``output_dir/input/``) with the ``kind`` trainer's config fields in
    ``settings``; returns the model folder and the metrics. Needs Ray (joined or started)."""
    from pydantic import ValidationError

    job_cls = load_all_jobs().get(kind)
    layout = OutputLayout.at(output_dir)
    layout.make()
    if not isinstance(data, str):
        if not data:
            raise ValueError(f"train_model({kind!r}): no rows to train on")
        path = fs.join(layout.root, "input")
        write_table_dir(path, pa.Table.from_pylist(data))
        data = path
    raw = {**(settings or {}), "method": kind, "model": base_model}
    raw.update(output_dir=layout.root, input=data)
    try:
        config = job_cls.config_cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"train settings ({kind})")) from None
    try:
        model = resolve_model(base_model)
    except ModelNotFoundError as exc:
        raise ConfigError(f"train base model: {exc}") from None
    job = job_cls()
    job.preflight(config)
    previous = _previous_metrics(layout)
    record = RunRecord(layout, config.model_dump(mode="json"))
    record.extra["model"] = {"spec": model.spec, "source": model.source, "kind": model.kind}
    try:
        job.run(JobContext(config=config, layout=layout, record=record, model=model))
        with record.stage("rejects"):
            record.count_rejects()  # as a job: rejects_by_reason, rejects_by_source
        if "skipped" in (record.counts.get("training") or {}) and previous:
            record.counts["training"] = {**previous, "reused": True}
        record.status = "succeeded"
    except BaseException as exc:
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.write()
    metrics = dict(record.counts.get("training") or {})
    reused = bool(metrics.pop("reused", False)) or "skipped" in metrics
    # the input's rejects, so a loop's manifest shows what its train stage could not use
    for key in ("rejected", "rejects_by_reason", "rejects_by_source"):
        metrics[key] = record.counts.get(key, 0 if key == "rejected" else {})
    dpo = fs.join(layout.root, "dpo_metrics.json")
    if fs.exists(dpo):
        metrics["dpo"] = json.loads(fs.read_bytes(dpo))
    return TrainResult(fs.join(layout.root, "model"), metrics, reused)
