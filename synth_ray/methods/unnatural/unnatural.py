"""The Unnatural Instructions job (see the package docstring for the method and defaults)."""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import Field

from synth_ray.config import ConfigError, StrictModel
from synth_ray.engines.base import SamplingConfig
from synth_ray.io.rejects import reject, write_rejects
from synth_ray.job import JOBS, Job, JobContext
from synth_ray.methods.base import RoundsJobConfig, write_instruction_dataset
from synth_ray.methods.unnatural import prompts as P
from synth_ray.methods.unnatural.parse import (
    EXAMPLE_JSON_SCHEMA,
    dedup_key,
    expand_reformulation,
    is_shot_copy,
    parse_example_json,
    parse_example_reason,
    parse_output,
    parse_reformulation_reason,
)
from synth_ray.stages.parse import json_object
from synth_ray.stages.prompt import apply_prompt_format
from synth_ray.stages.records import (
    error_reason,
    record_id,
    request_id,
    stage_sampling,
)
from synth_ray.stages.rounds import StageIO, generate_per_item, run_rounds

REFORMULATION_JSON_SCHEMA = {
    "type": "object",
    "properties": {"alternative_formulation": {"type": "string", "minLength": 1}},
    "required": ["alternative_formulation"],
    "additionalProperties": False,
}


class UnnaturalStructuredOutput(StrictModel):
    enabled: bool = Field(
        False,
        description="JSON records for the example and reformulation stages (for weak "
        "models); outputs stay free text. Paper: off.",
    )
    example_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(EXAMPLE_JSON_SCHEMA),
        description="Schema of a generated example: {instruction, input, constraints}.",
    )
    reformulation_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(REFORMULATION_JSON_SCHEMA),
        description="Schema of a reformulation: {alternative_formulation} (with {INPUT}).",
    )


def _default(d: dict) -> Any:
    return lambda: SamplingConfig(**d)


class UnnaturalSampling(StrictModel):
    example: SamplingConfig = Field(
        default_factory=_default(P.EXAMPLE_SAMPLING),
        description="Instruction + input + constraints (paper: nucleus sampling, top_p 0.99).",
    )
    output: SamplingConfig = Field(
        default_factory=_default(P.OUTPUT_SAMPLING), description="Outputs (paper: greedy)."
    )
    reformulation: SamplingConfig = Field(
        default_factory=_default(P.REFORMULATION_SAMPLING),
        description="Template expansion; n = formulations per task (paper: 2).",
    )


class UnnaturalConfig(RoundsJobConfig):
    method: Literal["unnatural"] = Field("unnatural", description="Unnatural Instructions.")
    seeds: str | None = Field(
        None,
        description="Seed examples JSONL (id, instruction, input, constraints). Default: "
        "the 15 shipped seeds in the paper's format.",
    )
    target_examples: int = Field(
        68_000, ge=1, description="Core examples to keep before outputs (paper: 68k)."
    )
    shots: int = Field(P.NUM_SHOTS, ge=1, description="Examples per prompt (paper: 3).")
    combinations: int = Field(
        P.NUM_COMBINATIONS, ge=1, description="Fixed few-shot combinations (paper: 5)."
    )
    combination_seed: int = Field(
        0,
        description="0: disjoint groups in file order (the survey's figure first); else shuffled.",
    )
    reformulate: bool = Field(
        True, description="Template expansion: add the alternative formulations (paper: yes)."
    )
    sampling: UnnaturalSampling = Field(
        default_factory=UnnaturalSampling, description="Sampling per stage."
    )
    structured_output: UnnaturalStructuredOutput = Field(
        default_factory=UnnaturalStructuredOutput, description="JSON output instead of free text."
    )
    seed: int = Field(0, description="Seed of the prompt order within rounds.")


@JOBS.register("unnatural")
class Unnatural(Job):
    """Unnatural Instructions: a 4th example from 3-shot prompts, outputs, reformulations."""

    config_cls = UnnaturalConfig
    engine_lifetime = "run"

    def preflight(self, config: UnnaturalConfig) -> None:
        try:
            seeds = P.load_seeds(config.seeds)
            P.seed_combinations(seeds, config.shots, config.combinations, config.combination_seed)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"field 'seeds': {exc}") from None

    def run(self, ctx: JobContext) -> None:
        cfg: UnnaturalConfig = ctx.config  # type: ignore[assignment]
        rec = ctx.record
        apply_prompt_format(ctx, cfg.prompt_format)
        seeds = P.load_seeds(cfg.seeds)
        combos = P.seed_combinations(seeds, cfg.shots, cfg.combinations, cfg.combination_seed)
        rec.counts["seeds"] = len(seeds)
        gen = StageIO.of(ctx)
        examples = self._examples(ctx, cfg, combos, gen)
        rows = self._outputs(ctx, cfg, examples, gen)
        if cfg.reformulate:
            rows += self._reformulations(ctx, cfg, rows, gen)
        write_instruction_dataset(ctx, rows, cfg.judge)
        rec.counts["core_examples"] = len(examples)

    # -- 1. instruction + input + constraints from 3-shot prompts ----------------------------
    def _examples(self, ctx, cfg: UnnaturalConfig, combos, gen) -> list[dict]:
        so = cfg.structured_output
        sampling = stage_sampling(cfg.sampling.example, so.example_schema if so.enabled else None)
        prompts = [(P.example_prompt(c), c) for c in combos]
        kept: list[dict] = []
        seen: set = set()

        def make_requests(rnd: int, rng: random.Random) -> list[dict]:
            out = []
            for k in range(cfg.requests_per_round):
                c = (rnd * cfg.requests_per_round + k) % len(prompts)  # the 5 prompts in turn
                out.append(
                    {
                        "id": request_id(
                            f"ex-r{rnd:05d}-q{k:04d}", prompts[c][0], sampling, gen.model_id
                        ),
                        "prompt": prompts[c][0],
                        "sampling": sampling,
                        "combination": c,
                    }
                )
            return out

        def accept(rnd: int, requests: list[dict], gens: list[dict]):
            combo_of = {r["id"]: r["combination"] for r in requests}
            rejects, added = [], 0
            for g in gens:
                rid = g["request_id"]
                ex, why = None, None
                if g["error"]:
                    why = error_reason(g["error"])
                elif so.enabled:
                    ex = parse_example_json(g["completion"])
                    why = None if ex else "invalid_json"
                else:
                    ex, why = parse_example_reason(g["completion"])
                if ex is not None:
                    shots = prompts[combo_of[rid]][1]
                    if is_shot_copy(ex, shots):
                        why = "copy_of_prompt_example"
                    elif dedup_key(ex) in seen:
                        why = "duplicate"
                    elif len(kept) >= cfg.target_examples:
                        why = "target_reached"
                if why:
                    rejects.append(
                        reject(
                            "unnatural",
                            why,
                            stage="example",
                            id=rid,
                            detail=(g["error"] or g["completion"])[:300],
                        )
                    )
                    continue
                seen.add(dedup_key(ex))
                kept.append(
                    {
                        **ex,
                        "id": rid,
                        "round": rnd,
                        "seed_ids": [s["id"] for s in prompts[combo_of[rid]][1]],
                    }
                )
                added += 1
            return added, rejects

        run_rounds(
            gen,
            stage="examples",
            target=cfg.target_examples,
            have=lambda: len(kept),
            make_requests=make_requests,
            accept=accept,
            seed=cfg.seed,
            max_rounds=cfg.max_rounds,
            patience=cfg.patience,
        )
        return kept

    # -- 2. outputs, greedy --------------------------------------------------------------------
    def _outputs(self, ctx, cfg: UnnaturalConfig, examples: list[dict], gen) -> list[dict]:
        gens = generate_per_item(
            gen,
            "outputs",
            {ex["id"]: P.output_prompt(ex) for ex in examples},
            lambda key: stage_sampling(cfg.sampling.output, None, key=key),
        )
        rows, rejects = [], []
        for ex in examples:
            g = (gens[ex["id"]] or [None])[0]
            out = parse_output(g["completion"]) if g and not g["error"] else None
            if out is None:
                why = (
                    error_reason(g["error"])
                    if g and g["error"]
                    else ("empty_output" if g else "generation_error")
                )
                rejects.append(
                    reject(
                        "unnatural",
                        why,
                        stage="output",
                        id=ex["id"],
                        detail=(g or {}).get("error") or "",
                    )
                )
                continue
            rows.append(self._row(ctx, ex, with_constraints(ex), ex["input"], out, {}))
        write_rejects(ctx.layout.rejects, rejects, "unnatural-outputs")
        return rows

    # -- 3. template expansion: alternative formulations -----------------------------------------
    def _reformulations(self, ctx, cfg: UnnaturalConfig, rows: list[dict], gen) -> list[dict]:
        so = cfg.structured_output
        schema = so.reformulation_schema if so.enabled else None
        gens = generate_per_item(
            gen,
            "reformulations",
            {r["id"]: P.reformulation_prompt(r["_example"]) for r in rows},
            lambda key: stage_sampling(cfg.sampling.reformulation, schema, key=key),
        )
        out, rejects = [], []
        for r in rows:
            ex, seen = r["_example"], set()
            for g in gens[r["id"]]:
                text, why = None, None
                if g["error"]:
                    why = error_reason(g["error"])
                else:
                    text = g["completion"]
                    if schema is not None:
                        text = (json_object(text) or {}).get("alternative_formulation")
                        if not isinstance(text, str):
                            text, why = None, "invalid_json"
                    if text is not None:
                        text, why = parse_reformulation_reason(text, ex)
                if text is not None and text in seen:
                    why = "duplicate"
                if why:
                    rejects.append(
                        reject(
                            "unnatural",
                            why,
                            stage="reformulation",
                            id=g["id"],
                            detail=(g["error"] or g["completion"])[:300],
                        )
                    )
                    continue
                seen.add(text)
                instruction = expand_reformulation(text, ex)
                out.append(
                    self._row(
                        ctx,
                        ex,
                        instruction,
                        "",
                        r["output"],
                        {"reformulation_of": r["id"], "formulation": text},
                    )
                )
        write_rejects(ctx.layout.rejects, rejects, "unnatural-reformulations")
        return out

    @staticmethod
    def _row(ctx, ex: dict, instruction: str, input_: str, output: str, extra: dict) -> dict:
        return {
            "id": record_id("unnatural", instruction, input_, output),
            "instruction": instruction,
            "input": input_,
            "output": output,
            "method": "unnatural",
            "round": ex["round"],
            "seed_ids": ex["seed_ids"],
            "request_id": ex["id"],
            "model": ctx.model.name,
            "run_id": ctx.run_id,
            "extra": {"constraints": ex["constraints"], **extra},
            "_example": ex,
        }


def with_constraints(ex: dict) -> str:
    """The instruction a finetuned model sees: the constraints, unless "None.", follow it (the
    paper's model is trained on instruction, input and constraints together)."""
    c = (ex.get("constraints") or "").strip()
    if c.rstrip(".").strip().lower() in ("", "none"):
        return ex["instruction"]
    return f"{ex['instruction']}\n{c}"
