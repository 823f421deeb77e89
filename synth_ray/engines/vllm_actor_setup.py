"""Setup hook for ray.data.llm's vLLM engine actors (Ray's ``worker_process_setup_hook``).

``final_only_outputs`` makes every generate request ask vLLM for its final output only
(``RequestOutputKind.FINAL_ONLY``, what ``vllm.LLM.generate`` uses). ray.data.llm's stage
consumes the request's output stream and keeps only the finished output, so nothing it returns
changes; but with vLLM's default (CUMULATIVE) the engine's frontend builds a ``RequestOutput``
for every running request at every step, and on a CPU box that work competes with the engine
(see benchmarks/generation_overhead.py). The output kind cannot be sent as a per-row sampling
parameter: it is an Enum, and rows cross Arrow as plain values.
"""

from __future__ import annotations

import functools


def final_only_outputs() -> None:
    from ray.llm._internal.batch.stages import vllm_engine_stage as stage
    from vllm.sampling_params import RequestOutputKind, SamplingParams

    wrapper = stage.vLLMEngineWrapper
    if getattr(wrapper._prepare_llm_request, "_synth_ray_final_only", False):
        return
    original = wrapper._prepare_llm_request

    @functools.wraps(original)
    async def prepare(self, row):
        request = await original(self, row)
        if isinstance(request.params, SamplingParams):
            request.params.output_kind = RequestOutputKind.FINAL_ONLY
        return request

    prepare._synth_ray_final_only = True
    wrapper._prepare_llm_request = prepare
