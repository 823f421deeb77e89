"""The Alpaca job (see the package docstring for the method and its defaults)."""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import Field

from synth_ray.config import StrictModel
from synth_ray.engines.base import SamplingConfig
from synth_ray.filters.instructions import ALPACA_BLOCKLIST, instruction_reject_reason
from synth_ray.filters.novelty_pool import NoveltyPool
from synth_ray.io.rejects import reject
from synth_ray.job import JOBS, Job, JobContext
from synth_ray.methods.alpaca import prompts as P
from synth_ray.methods.alpaca.parse import (
    BATCH_JSON_SCHEMA,
    parse_batch,
    parse_batch_json,
)
from synth_ray.methods.base import RoundsJobConfig, write_instruction_dataset
from synth_ray.methods.self_instruct.prompts import check_seed_tasks, load_seed_tasks
from synth_ray.stages.novelty_stage import offer
from synth_ray.stages.prompt import apply_prompt_format
from synth_ray.stages.records import (
    error_reason,
    record_id,
    request_id,
    stage_sampling,
)
from synth_ray.stages.rounds import StageIO, run_rounds


class AlpacaStructuredOutput(StrictModel):
    enabled: bool = Field(
        False,
        description="Ask for JSON {tasks: [{instruction, input, output}]} instead of the "
        "numbered free text (for weak models); paper: off.",
    )
    json_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(BATCH_JSON_SCHEMA),
        description="The JSON schema of one batch of tasks.",
    )


class AlpacaConfig(RoundsJobConfig):
    method: Literal["alpaca"] = Field("alpaca", description="Alpaca (self-instruct distillation).")
    seed_tasks: str | None = Field(
        None,
        description="Seed tasks JSONL (Self-Instruct format; the first instance of each "
        "is its example). Default: the 175 Self-Instruct seed tasks, as Alpaca.",
    )
    target_instructions: int = Field(
        52_000, ge=1, description="Stop when this many instructions are kept (Alpaca: 52k)."
    )
    prompt_examples: int = Field(
        P.NUM_PROMPT_INSTRUCTIONS, ge=1, description="Seed examples per prompt (Alpaca: 3)."
    )
    rouge_threshold: float = Field(
        P.ROUGE_THRESHOLD,
        ge=0,
        le=1,
        description="Keep an instruction only if its ROUGE-L with every pool instruction "
        "(seeds + kept) is at most this (Alpaca: 0.7).",
    )
    blocklist: list[str] = Field(
        default_factory=lambda: list(ALPACA_BLOCKLIST),
        description="Whole words that drop an instruction (Alpaca's list: image, graph, "
        "picture, file, map, draw, plot, go to, video, audio, music, flowchart, diagram).",
    )
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(**P.SAMPLING),
        description="Alpaca: temperature 1.0, top_p 1.0, 3072 tokens, stop at task 20. Cap "
        "max_tokens so that prompt + max_tokens fits the model's context.",
    )
    structured_output: AlpacaStructuredOutput = Field(
        default_factory=AlpacaStructuredOutput, description="JSON output instead of free text."
    )
    seed: int = Field(42, description="Seed of the example sampling.")


@JOBS.register("alpaca")
class Alpaca(Job):
    """Alpaca: 20 tasks per request from 3 seed tasks (survey, distillation)."""

    config_cls = AlpacaConfig
    engine_lifetime = "run"

    def preflight(self, config: AlpacaConfig) -> None:
        check_seed_tasks(config.seed_tasks, config.prompt_examples, "prompt_examples")

    def run(self, ctx: JobContext) -> None:
        cfg: AlpacaConfig = ctx.config  # type: ignore[assignment]
        rec = ctx.record
        apply_prompt_format(ctx, cfg.prompt_format)
        tasks = load_seed_tasks(cfg.seed_tasks)
        seeds = [dict(ex, id=t["id"]) for t, ex in zip(tasks, P.seed_examples(tasks))]
        rec.counts["seed_tasks"] = len(seeds)
        so = cfg.structured_output
        sampling = stage_sampling(cfg.sampling, so.json_schema if so.enabled else None)
        gen = StageIO.of(ctx)
        pool = NoveltyPool(cfg.rouge_threshold, [s["instruction"] for s in seeds])
        kept: list[dict] = []
        counts = {"candidates": 0, "kept": 0, "rejected": 0}

        def make_requests(rnd: int, rng: random.Random) -> list[dict]:
            out = []
            for k in range(cfg.requests_per_round):
                shots = rng.sample(seeds, cfg.prompt_examples)
                prompt = P.encode_prompt(shots)
                out.append(
                    {
                        "id": request_id(
                            f"alpaca-r{rnd:05d}-q{k:04d}", prompt, sampling, gen.model_id
                        ),
                        "prompt": prompt,
                        "sampling": sampling,
                        "shown_ids": [s["id"] for s in shots],
                    }
                )
            return out

        def accept(rnd: int, requests: list[dict], gens: list[dict]):
            shown = {r["id"]: r["shown_ids"] for r in requests}
            cands, rejects = [], []
            for g in gens:
                rid = g["request_id"]
                if g["error"]:
                    rejects.append(
                        reject(
                            "alpaca",
                            error_reason(g["error"]),
                            stage="generate",
                            id=rid,
                            detail=g["error"],
                        )
                    )
                    continue
                if so.enabled:
                    items = parse_batch_json(g["completion"])
                else:
                    items = parse_batch(
                        g["completion"],
                        num_prompt_examples=cfg.prompt_examples,
                        finish_reason=g["finish_reason"],
                    )
                if not items:
                    rejects.append(
                        reject(
                            "alpaca",
                            "no_tasks_parsed",
                            stage="parse",
                            id=rid,
                            detail=g["completion"][:300],
                        )
                    )
                for k, item in enumerate(items):
                    cid = f"{rid}-t{k}"
                    why = instruction_reject_reason(item["instruction"], blocklist=cfg.blocklist)
                    if not why and not item["output"].strip():
                        why = "empty_output"
                    if why:
                        rejects.append(
                            reject(
                                "alpaca", why, stage="filter", id=cid, detail=item["instruction"]
                            )
                        )
                    else:
                        cands.append(
                            {
                                **item,
                                "id": cid,
                                "request_id": rid,
                                "round": rnd,
                                "seed_ids": shown[rid],
                            }
                        )
            counts["candidates"] += len(cands)
            new, more = offer(pool, cands, cfg.target_instructions - len(kept), "alpaca")
            kept.extend(new)
            counts["kept"] += len(new)
            counts["rejected"] += len(rejects) + len(more)
            return len(new), rejects + more

        try:
            run_rounds(
                gen,
                stage="alpaca",
                target=cfg.target_instructions,
                have=lambda: len(kept),
                make_requests=make_requests,
                accept=accept,
                seed=cfg.seed,
                max_rounds=cfg.max_rounds,
                patience=cfg.patience,
            )
        finally:
            pool.close()
        rows = [
            {
                "id": record_id("alpaca", k["instruction"], k["input"], k["output"]),
                "instruction": k["instruction"],
                "input": k["input"],
                "output": k["output"],
                "method": "alpaca",
                "round": k["round"],
                "seed_ids": k["seed_ids"],
                "request_id": k["request_id"],
                "model": ctx.model.name,
                "run_id": ctx.run_id,
                "extra": {"max_rouge_l": k["max_rouge_l"]},
            }
            for k in kept
        ]
        write_instruction_dataset(ctx, rows, cfg.judge)
        rec.counts["instructions"] = len(kept)
        rec.counts["bootstrap"] = counts
