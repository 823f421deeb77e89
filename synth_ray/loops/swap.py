"""Engines follow the model: after M_{t+1} is trained, generation uses it, verified.

``ServedModel`` holds the loop's generation engine and the model it serves. ``use(model)``
swaps to another model folder:

- ``restart`` (default, works everywhere, CPU and GPU): stop the replicas before training
  (releasing their GPUs for Ray Train, see ``before_training``) and start new ones on the new
  folder;
- ``reload``: load the new weights into the running replicas in place (vLLM's
  ``reload_weights``), then reset the prefix cache. Same architecture only; the replicas stay
  up through training, so a cluster that cannot hold both fails before training, clearly.

Either way the swap is then verified, since a successful start or reload is no proof of new
weights (vLLM issues 32718 and 48312): checksums of the token embedding, the norms and (where the
engine keeps them as tensors: GPU) the MLP down projections are read back from each replica
(``synth_ray.engines.vllm_worker_ext``) and compared with the same sums computed from the
folder's safetensors, cast to the dtype the engine holds.
The probe also says whether those weights differ from the parent model's at all (if they did
not, the probe could not tell the two apart) and records greedy answers to fixed prompts for a
human reader. A failed probe stops the loop.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from synth_ray.engines import build_engine
from synth_ray.engines.vllm_worker_ext import checksum_tensor

if TYPE_CHECKING:
    from synth_ray.engines import Engine, EngineConfig
    from synth_ray.models import ResolvedModel

PROBE_PROMPTS = ("Give three tips for staying healthy.", "What is the capital of France?")


class SwapError(RuntimeError):
    """The engines do not serve the model they were asked to serve."""


def folder_checksums(folder: str, dtypes: dict[str, str]) -> dict[str, list]:
    """Checksums of the probed tensors of a model folder's safetensors, each cast to the dtype
    the engine reported for it (``dtypes``: name -> dtype)."""
    import torch
    from safetensors import safe_open

    out: dict[str, list] = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as sf:
            for name in sf.keys():  # noqa: SIM118 - safe_open has no __iter__
                if name in dtypes:
                    t = sf.get_tensor(name).to(getattr(torch, dtypes[name]))
                    out[name] = list(checksum_tensor(t))
    return out


def _close(a: list, b: list) -> bool:
    """Same dtype and shape, and sums equal up to the order of a float64 reduction."""
    if a[0] != b[0] or list(a[3]) != list(b[3]):
        return False
    scale = math.sqrt(abs(b[2])) + abs(b[1]) + 1e-12
    return abs(a[1] - b[1]) <= 1e-6 * scale and abs(a[2] - b[2]) <= 1e-6 * (abs(b[2]) + 1e-12)


def compare(
    served: list[dict[str, list]], expected: dict[str, list], parent: dict[str, list] | None
) -> dict[str, Any]:
    """The probe's verdict from checksums (pure: tested on recorded values)."""
    names = sorted(expected)
    mismatched = sorted(
        {
            n
            for replica in served
            for n in names
            if n not in replica or not _close(replica[n], expected[n])
        }
    )
    distinguishable = None
    if parent is not None:
        distinguishable = any(n in parent and not _close(parent[n], expected[n]) for n in names)
    return {
        "ok": bool(names) and not mismatched and len(served) > 0,
        "replicas": len(served),
        "tensors_compared": len(names),
        "mismatched": mismatched[:10],
        "differs_from_parent": distinguishable,
    }


class ServedModel:
    """The loop's generation engine and the model it serves."""

    def __init__(self, engine_config: EngineConfig, mode: Literal["restart", "reload"] = "restart"):
        self.engine_config = engine_config
        self.mode = mode
        self.model: ResolvedModel | None = None
        self.engine: Engine | None = None
        self.starts = 0  # engine replicas started, over every model served

    def _build(self, model: ResolvedModel) -> Engine:
        engine = build_engine(self.engine_config, model)
        engine.use_lifetime("run")
        if getattr(engine, "lifetime", "run") != "run" or not hasattr(engine, "weight_checksums"):
            raise SwapError(
                "a loop's engine must be `vllm` with lifetime run or auto (long-lived replicas "
                "whose weights can be read back)"
            )
        return engine

    def use(self, model: ResolvedModel, parent: ResolvedModel | None = None) -> dict[str, Any]:
        """Serve ``model`` (swap if another is served), verify, return the probe record."""
        if self.engine is not None and self.model is not None:
            if self.model.fingerprint == model.fingerprint:
                # the same content (a retrain that reproduced its parent): nothing to load, but
                # the record still shows what the engine serves
                self.model = model
                return {**self.verify(parent), "swap": "none (already served)"}
            if self.mode == "reload":
                self.engine.reload(model)  # type: ignore[attr-defined]
            else:
                self.release()
        if self.engine is None:
            self.engine = self._build(model)
        self.model = model
        return self.verify(parent)

    def ensure(self, model: ResolvedModel) -> dict[str, Any] | None:
        """Serve ``model`` before a stage that generates with it: the probe record when the
        engine had to start or move, None when it already served that content."""
        served = self.model.fingerprint if self.engine is not None and self.model else None
        return None if served == model.fingerprint else self.use(model)

    def verify(self, parent: ResolvedModel | None = None) -> dict[str, Any]:
        assert self.engine is not None and self.model is not None
        served = self.engine.weight_checksums()  # type: ignore[attr-defined]
        dtypes = {n: v[0] for n, v in served[0].items()} if served else {}
        expected = folder_checksums(self.model.source, dtypes)
        parent_sums = folder_checksums(parent.source, dtypes) if parent is not None else None
        verdict = compare(served, expected, parent_sums)
        verdict.update(
            swap=self.mode,
            model=self.model.fingerprint,
            source=self.model.source,
            greedy=self._greedy_answers(),
        )
        if not verdict["ok"]:
            raise SwapError(
                f"the engine does not serve {self.model.source} ({self.model.fingerprint}): "
                f"{json.dumps({k: verdict[k] for k in ('replicas', 'tensors_compared', 'mismatched')})}"
            )
        return verdict

    def _greedy_answers(self) -> list[str]:
        import ray.data

        from synth_ray.engines.base import SamplingConfig

        sampling = SamplingConfig(temperature=0.0, max_tokens=24).to_json()
        rows = [
            {"id": f"probe-{i}", "messages": [{"role": "user", "content": p}], "sampling": sampling}
            for i, p in enumerate(PROBE_PROMPTS)
        ]
        out = self.engine.generate(ray.data.from_items(rows), "messages", num_rows=len(rows))
        got = {r["id"]: r["completion"] for r in out.take_all()}
        return [got.get(f"probe-{i}", "") for i in range(len(PROBE_PROMPTS))]

    def before_training(self, scaling: dict[str, Any]) -> None:
        """Make room for Ray Train. ``restart``: stop the replicas (their GPUs go to the
        trainer; new replicas start on M_{t+1} after). ``reload``: the replicas stay up through
        training, so the cluster must hold both; when its resources cannot, fail now, naming
        them, rather than leave Ray Train waiting for resources that never free up."""
        if self.mode == "restart" or self.engine is None:
            self.release()
            return
        import ray

        c = self.engine_config
        workers = int(scaling.get("num_workers", 2))
        use_gpu = bool(scaling.get("use_gpu", False))
        need = {
            "CPU": c.replicas * getattr(c, "num_cpus", 1.0) * getattr(c, "tensor_parallel_size", 1)
            + workers * float(scaling.get("cpus_per_worker", 1.0)),
            "GPU": (
                c.replicas * getattr(c, "num_gpus", 0) * getattr(c, "tensor_parallel_size", 1)
                if getattr(c, "resolved_device", lambda: "cpu")() == "gpu"
                else 0.0
            )
            + (workers if use_gpu else 0),
        }
        have = ray.cluster_resources()
        short = {k: (v, have.get(k, 0.0)) for k, v in need.items() if v > have.get(k, 0.0)}
        if short:
            detail = ", ".join(f"{k}: need {n:g}, cluster has {h:g}" for k, (n, h) in short.items())
            raise SwapError(
                f"swap: reload keeps the engines up while training, and this cluster cannot hold "
                f"both ({detail}); use swap: restart, which stops them first"
            )

    def release(self) -> None:
        """Stop the replicas (before training: on GPU clusters this frees their GPUs)."""
        if self.engine is not None:
            self.engine.close()
            self.starts += self.engine.starts
            self.engine = None
