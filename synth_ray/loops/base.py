"""The loop layer: iterations of named, resumable stages, each iteration with a manifest.

An iterative job runs iterations t = 0..T-1 under ``OUTPUT_DIR/iter_<t>/``. An iteration is a
sequence of named stages (for example augment, curate, train, swap), each run through
:meth:`Iteration.stage`: a stage whose status is ``done`` in the manifest is not run again
(its recorded result is returned), any other runs and is then marked done. The manifest,
``iter_<t>/manifest.json``, is rewritten atomically after every stage; it holds the parent
model and its fingerprint, the datasets each stage read and wrote (rows and a content hash),
the judge or verifier settings, run ids, metrics, the swap probe, and each stage's status.

A job killed at any moment and run again therefore resumes at its first unfinished stage:
finished stages are skipped, and the unfinished one resumes by its own means (generation skips
ids already written, training resumes from its last checkpoint or finds its model complete),
so nothing that finished is redone and nothing is written twice. ``synth-ray lineage
OUTPUT_DIR`` prints one line per iteration from the manifests.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError

from synth_ray.config import ConfigError, format_validation_error
from synth_ray.io import fs
from synth_ray.io.ids import stable_hash
from synth_ray.io.layout import read_parquet_dir
from synth_ray.job import GenerationJobConfig, Job

if TYPE_CHECKING:
    from synth_ray.job import JobContext
    from synth_ray.loops.swap import ServedModel
    from synth_ray.models import ResolvedModel

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class LoopConfig(GenerationJobConfig):
    """Fields every loop shares."""

    iterations: int = Field(2, ge=1, description="Iterations of the loop (t = 0..T-1).")
    swap: Literal["restart", "reload"] = Field(
        "restart",
        description="How the engines move to a newly trained model: restart (stop them, start "
        "new ones on the new folder; works on CPU and GPU) or reload (vLLM's in-place "
        "reload_weights on the running replicas, then a prefix-cache reset). Either way a "
        "probe verifies the weights served.",
    )


def model_record(model: ResolvedModel) -> dict[str, str]:
    return {"spec": model.spec, "source": model.source, "fingerprint": model.fingerprint}


def dataset_record(path: str, role: str | None = None) -> dict[str, Any]:
    """Rows and a content hash of a Parquet folder (the hash of its sorted row ids, or of its
    files' names where those are content-named)."""
    table = read_parquet_dir(path)
    if table is None:
        return {"path": path, "rows": 0, "hash": None, **({"role": role} if role else {})}
    if "id" in table.column_names:
        digest = stable_hash(sorted(str(x) for x in table.column("id").to_pylist()))
    else:
        digest = stable_hash([f.rsplit("/", 1)[-1] for f in fs.list_files(path, (".parquet",))])
    out = {"path": path, "rows": table.num_rows, "hash": digest}
    if role:
        out["role"] = role
    return out


class Iteration:
    """One iteration's folder and manifest."""

    def __init__(self, root: str, t: int, run_id: str):
        self.t = t
        self.dir = fs.join(root, f"iter_{t}")
        self.run_id = run_id
        self.path = fs.join(self.dir, MANIFEST)
        fs.makedirs(self.dir)
        self.manifest: dict[str, Any] = self._load() or {
            "iteration": t,
            "status": "running",
            "created_at": datetime.now(UTC).isoformat(),
            "parent_model": None,
            "model_out": None,
            "settings": {},
            "datasets": {},
            "metrics": {},
            "probe": None,
            "stages": {},
            "run_ids": [],
        }
        if run_id not in self.manifest["run_ids"]:
            self.manifest["run_ids"].append(run_id)
            self.save()
        self.skipped: list[str] = []  # stages found done by this run

    def _load(self) -> dict[str, Any] | None:
        if not fs.exists(self.path):
            return None
        return json.loads(fs.read_bytes(self.path))

    def save(self) -> None:
        self.manifest["updated_at"] = datetime.now(UTC).isoformat()
        data = json.dumps(self.manifest, indent=2, sort_keys=False, default=str) + "\n"
        fs.write_bytes(self.path, data.encode())  # atomic: temp file + rename

    def sub(self, name: str) -> str:
        return fs.join(self.dir, name)

    def done(self, name: str) -> bool:
        return (self.manifest["stages"].get(name) or {}).get("status") == "done"

    def result(self, name: str) -> dict[str, Any]:
        return (self.manifest["stages"].get(name) or {}).get("result") or {}

    def stage(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """Run stage ``name`` unless the manifest says it is done; returns its result (a JSON
        mapping; its ``datasets`` key, if any, is also filed under the manifest's datasets)."""
        if self.done(name):
            self.skipped.append(name)
            log.info("iteration %d: stage %s done, skipped", self.t, name)
            return self.result(name)
        entry = self.manifest["stages"].setdefault(name, {})
        entry.update(status="running", run_id=self.run_id, started_at=_now())
        attempts = entry.get("attempts", 0) + 1
        entry["attempts"] = attempts
        self.save()
        t0 = time.perf_counter()
        try:
            result = fn() or {}
        except BaseException as exc:
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            self.save()
            raise
        entry.update(
            status="done",
            finished_at=_now(),
            seconds=round(time.perf_counter() - t0, 3),
            result=result,
        )
        entry.pop("error", None)
        for key, rec in (result.get("datasets") or {}).items():
            self.manifest["datasets"][f"{name}.{key}"] = rec
        self.save()
        return result

    def finish(self, metrics: dict[str, Any]) -> None:
        self.manifest["metrics"].update(metrics)
        self.manifest["status"] = "done"
        self.save()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class IterativeJob(Job):
    """Base of the loops: ``iterate(ctx, it, state)`` runs one iteration's stages."""

    kind = "loop"
    engine_lifetime = "run"

    def iterations(self, ctx: JobContext) -> list[Iteration]:
        return [
            Iteration(ctx.layout.root, t, ctx.run_id)
            for t in range(ctx.config.iterations)  # type: ignore[attr-defined]
        ]

    def run_iterations(
        self,
        ctx: JobContext,
        served: ServedModel,
        first: Callable[[Iteration], ResolvedModel],
        step: Callable[[Iteration, ResolvedModel], ResolvedModel],
    ) -> None:
        """Run the loop: ``first(iteration 0)`` runs the stages before the first iteration's own
        (seed models, M1) and returns M_0; then ``step(it, M_t)`` runs iteration t and returns
        M_{t+1}. Each iteration's parent model goes to its manifest and its metrics to run.json
        (``counts.iterations``); the served engines are released however the loop ends."""
        iters = self.iterations(ctx)
        summary = []
        try:
            m_t = first(iters[0])
            for it in iters:
                it.manifest["parent_model"] = model_record(m_t)
                m_next = step(it, m_t)
                summary.append({"iteration": it.t, "skipped": it.skipped, **it.manifest["metrics"]})
                m_t = m_next
        finally:
            served.release()
            ctx.record.engine_starts += served.starts
            ctx.record.counts["iterations"] = summary
        ctx.record.extra["final_model"] = model_record(m_t)


def check_train_settings(kind: str, v: dict[str, Any]) -> dict[str, Any]:
    """A loop's settings for one of its training calls (fields of `method: sft`, `dpo` or
    `reward`),
    validated as that job's config would be; the fields the loop sets itself are refused."""
    from synth_ray.train.dpo_config import DPOJobConfig
    from synth_ray.train.reward_config import RewardJobConfig
    from synth_ray.train.sft_config import SFTJobConfig

    for key in ("method", "model", "input", "output_dir", "ref_model"):
        if key in v:
            raise ValueError(f"{key} is set by the loop, not here")
    cls = {"sft": SFTJobConfig, "dpo": DPOJobConfig, "reward": RewardJobConfig}[kind]
    raw = {"method": kind, "model": "tiny", "output_dir": "x", "input": "x"}
    try:
        cls.model_validate({**v, **raw})
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, f"{kind.upper()} settings")) from None
    return v


def check_loop_engine(config: GenerationJobConfig) -> None:
    """A loop serves its own models on long-lived vLLM replicas: other engines stop preflight."""
    if config.engine.type != "vllm":
        raise ConfigError("field 'engine.type': a loop serves its own models: use vllm")
    if getattr(config.engine, "lifetime", "auto") == "dataset":
        raise ConfigError("field 'engine.lifetime': a loop needs long-lived replicas (run)")


def read_manifests(output_dir: str) -> list[dict[str, Any]]:
    root = fs.absolute(output_dir)
    out = []
    t = 0
    while fs.exists(fs.join(root, f"iter_{t}", MANIFEST)):
        out.append(json.loads(fs.read_bytes(fs.join(root, f"iter_{t}", MANIFEST))))
        t += 1
    return out


def lineage_lines(output_dir: str) -> list[str]:
    """One line per iteration: parent model -> model out (fingerprints), data in and out,
    metrics, stages done, the swap probe."""
    manifests = read_manifests(output_dir)
    if not manifests:
        raise FileNotFoundError(f"no iteration manifests under {fs.absolute(output_dir)}")
    lines = []
    for m in manifests:
        parent = m.get("parent_model") or {}
        out = m.get("model_out") or {}
        data = m.get("datasets") or {}
        ins = [f"{k}={v.get('rows')}" for k, v in data.items() if v.get("role") == "in"]
        outs = [f"{k}={v.get('rows')}" for k, v in data.items() if v.get("role") != "in"]
        stages = m.get("stages") or {}
        done = sum(1 for s in stages.values() if s.get("status") == "done")
        probe = m.get("probe") or {}
        metrics = json.dumps(m.get("metrics") or {}, sort_keys=True, default=str)
        lines.append(
            f"iter {m['iteration']} [{m.get('status')}, {done}/{len(stages)} stages] "
            f"model {parent.get('spec', '?')} {parent.get('fingerprint', '?')} -> "
            f"{out.get('fingerprint', '-')} | in: {' '.join(ins) or '-'} | "
            f"out: {' '.join(outs) or '-'} | probe: "
            f"{'ok' if probe.get('ok') else ('-' if not probe else 'FAILED')} | {metrics}"
        )
    return lines
