"""The LLM-judge deployment: a vLLM ``AsyncLLMEngine`` per replica, prompted with the rubrics.

- ``judge``: each (prompt, response) rendered with the rubric as one user turn in the judge's
  chat template, ``samples`` judgements sampled (vLLM ``n``), each parsed for its "Score: N"
  (``synth_ray.stages.rubrics``), parseable scores averaged. By default (``output: regex``)
  vLLM structured outputs constrain every judgement to end in a score in range, so every
  judgement parses; the reply carries the parse rate. A request vLLM refuses (the prompt
  is over the context) gives a null score with that reason, never an HTTP error.
- ``compare``: Constitutional AI's feedback prompt; the log-probabilities of the continuations
  " (A)" and " (B)" are read from vLLM's prompt log-probabilities of prompt+option (token ids
  sent as given, so what is scored is exactly the option's tokens), then normalised.
- ``check_health`` asks the engine (``AsyncLLM.check_health`` raises once its engine core process
  is dead), so Serve replaces a replica whose engine died.

The engine arguments come from the same ``VLLMEngineConfig`` as the jobs' ``vllm`` engine
(``engine_setup``: CPU/GPU differences, structured-output backend), so the judge behaves like
the generation engines on both vLLM builds.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from ray import serve

from synth_ray.engines.option_logprobs import option_logprob
from synth_ray.serve.config import JudgeConfig
from synth_ray.stages import rubrics


@serve.deployment(
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=32,
    health_check_period_s=10,
    health_check_timeout_s=30,
)
class Judge:
    def __init__(self, config: dict[str, Any]):
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        from synth_ray.engines.vllm_engine import VLLMEngine
        from synth_ray.models.resolve import model_revision, resolve_model

        c = JudgeConfig.model_validate(config)
        self.config = c
        resolved = resolve_model(c.model)
        engine_kwargs, _bundles, _acc, env = VLLMEngine(c.engine, resolved).engine_setup()
        os.environ.update(env)  # e.g. VLLM_CPU_KVCACHE_SPACE, read when the engine starts
        self.engine = AsyncLLMEngine.from_engine_args(
            AsyncEngineArgs(model=resolved.source, **engine_kwargs)
        )
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.source)
        self.info = {"model": c.model, "revision": model_revision(resolved.source)}

    def model_info(self) -> dict[str, str]:
        return self.info

    async def check_health(self) -> None:
        await self.engine.check_health()

    async def _run(self, prompt: Any, params) -> Any:
        final = None
        async for out in self.engine.generate(prompt, params, f"judge-{uuid.uuid4().hex}"):
            final = out
        return final

    # -- LLM-as-a-judge ---------------------------------------------------------------------

    def _judge_params(self, rubric: rubrics.Rubric, samples: int, seed: int | None):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        c = self.config
        # The same constraint as the in-process judge stage (rubrics.Rubric.constraint).
        fields = rubric.constraint(c.output, c.max_tokens, c.max_reason_chars)
        structured = None
        if "regex" in fields:
            structured = StructuredOutputsParams(regex=fields["regex"])
        elif "json_schema" in fields:
            structured = StructuredOutputsParams(json=fields["json_schema"])
        return SamplingParams(
            n=samples,
            temperature=c.temperature,
            top_p=c.top_p,
            max_tokens=c.max_tokens,
            seed=seed,
            structured_outputs=structured,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    async def _judge_one(
        self, rubric: rubrics.Rubric, prompt: str, response: str, samples: int, seed: int | None
    ) -> dict[str, Any]:
        text = self.tokenizer.apply_chat_template(
            rubric.messages(prompt, response), tokenize=False, add_generation_prompt=True
        )
        try:
            final = await self._run(text, self._judge_params(rubric, samples, seed))
        except Exception as exc:
            if _engine_dead(exc):
                raise
            return {
                "score": None,
                "samples": [None] * samples,
                "reasoning": [],
                "reason": f"judge request refused: {type(exc).__name__}: {str(exc)[:300]}",
            }
        verdict = rubrics.aggregate(
            [rubrics.parse_judgement(o.text, rubric, self.config.output) for o in final.outputs]
        )
        return {
            "score": verdict.score,
            "samples": verdict.samples,
            "reasoning": verdict.reasoning,
            "reason": verdict.reason,
        }

    async def judge(
        self, rubric_name: str, items: list[tuple[str, str]], samples: int | None = None
    ) -> dict[str, Any]:
        rubric = rubrics.get_rubric(rubric_name)
        n = samples or self.config.default_samples
        base = self.config.seed
        results = await asyncio.gather(
            *(
                self._judge_one(rubric, p, r, n, None if base is None else base + i * n)
                for i, (p, r) in enumerate(items)
            )
        )
        scores = [x for r in results for x in r["samples"]]
        counts = rubrics.parse_counts(scores, rubric.name, self.config.output)
        return {**self.info, "results": list(results), "parse": counts}

    # -- Constitutional AI pairwise feedback ------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    async def _option_logprob(self, prefix: str, option: str) -> float:
        return await option_logprob(self._run, self._ids, prefix, option)

    async def _compare_one(self, principle: str, prompt: str, a: str, b: str) -> dict[str, Any]:
        prefix = rubrics.compare_prompt(principle, prompt, a, b)
        try:
            la, lb = await asyncio.gather(
                *(self._option_logprob(prefix, o) for o in rubrics.OPTIONS)
            )
        except Exception as exc:
            if _engine_dead(exc):
                raise
            return {
                "p_a": None,
                "p_b": None,
                "logprob_a": None,
                "logprob_b": None,
                "preferred": None,
                "reason": f"compare request refused: {type(exc).__name__}: {str(exc)[:300]}",
            }
        pa, pb = rubrics.option_probabilities(la, lb)
        return {
            "p_a": pa,
            "p_b": pb,
            "logprob_a": la,
            "logprob_b": lb,
            "preferred": "A" if pa >= pb else "B",
            "reason": None,
        }

    async def compare(self, principle: str, items: list[tuple[str, str, str]]) -> dict[str, Any]:
        results = await asyncio.gather(*(self._compare_one(principle, *it) for it in items))
        return {**self.info, "results": list(results)}


def _engine_dead(exc: BaseException) -> bool:
    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:  # pragma: no cover - other vLLM layouts
        return False
    return isinstance(exc, EngineDeadError)
