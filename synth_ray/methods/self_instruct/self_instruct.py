"""The Self-Instruct job (see the package docstring for the method and its defaults)."""

from __future__ import annotations

import json
import random
from typing import Any, Literal

from pydantic import Field

from synth_ray.config import ConfigError, StrictModel
from synth_ray.engines.base import SamplingConfig
from synth_ray.filters.instructions import (
    SELF_INSTRUCT_BLOCKLIST,
    instruction_reject_reason,
)
from synth_ray.filters.novelty_pool import NoveltyPool
from synth_ray.io.ids import text_hash
from synth_ray.io.rejects import reject, write_rejects
from synth_ray.job import JOBS, Job, JobContext
from synth_ray.methods.base import RoundsJobConfig, write_instruction_dataset
from synth_ray.methods.self_instruct import prompts as P
from synth_ray.methods.self_instruct.parse import (
    CLASSIFY_JSON_SCHEMA,
    CLF_INSTANCES_JSON_SCHEMA,
    INSTANCES_JSON_SCHEMA,
    TASKS_JSON_SCHEMA,
    filter_instances,
    parse_instances,
    parse_instances_json,
    parse_is_classification,
    parse_tasks,
    parse_tasks_json,
)
from synth_ray.stages.novelty_stage import offer
from synth_ray.stages.parse import json_object
from synth_ray.stages.prompt import apply_prompt_format
from synth_ray.stages.records import (
    error_reason,
    record_id,
    request_id,
    stage_sampling,
    write_table_dir,
)
from synth_ray.stages.rounds import StageIO, generate_per_item, run_rounds


class StructuredOutput(StrictModel):
    enabled: bool = Field(
        False,
        description="Ask the engine for JSON records (vLLM structured outputs / OpenAI "
        "response_format) instead of free text: a deviation for weak models; paper: off.",
    )
    tasks_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(TASKS_JSON_SCHEMA),
        description="Schema of new tasks: {tasks: [str]}.",
    )
    classify_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(CLASSIFY_JSON_SCHEMA),
        description="Schema of the classification answer: {is_classification: Yes|No}.",
    )
    instances_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(INSTANCES_JSON_SCHEMA),
        description="Schema of input-first instances: {instances: [{input, output}]}.",
    )
    clf_instances_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(CLF_INSTANCES_JSON_SCHEMA),
        description="Schema of output-first instances: {instances: [{class_label, input}]}.",
    )


def _sampling(**kw) -> Any:
    return lambda: SamplingConfig(**kw)


class SelfInstructSampling(StrictModel):
    generate: SamplingConfig = Field(
        default_factory=_sampling(**P.GENERATE_SAMPLING),
        description="New-task generation (paper: temperature 0.7, top_p 0.5, presence penalty 2, "
        "1024 tokens, stop at the 16th task).",
    )
    classify: SamplingConfig = Field(
        default_factory=_sampling(**P.CLASSIFY_SAMPLING),
        description="Classification identification (paper: greedy, 3 tokens).",
    )
    instances: SamplingConfig = Field(
        default_factory=_sampling(**P.INSTANCE_SAMPLING),
        description="Input-first instances (paper: greedy, presence penalty 1.5, 350 tokens, "
        "stop at a 6th example).",
    )
    clf_instances: SamplingConfig = Field(
        default_factory=_sampling(**P.CLF_INSTANCE_SAMPLING),
        description="Output-first instances of classification tasks (paper: as input-first, "
        "300 tokens).",
    )


class SelfInstructConfig(RoundsJobConfig):
    method: Literal["self_instruct"] = Field("self_instruct", description="Self-Instruct.")
    seed_tasks: str | None = Field(
        None, description="Seed tasks JSONL (Self-Instruct format). Default: the paper's 175."
    )
    target_instructions: int = Field(
        52_000, ge=1, description="Stop when this many new instructions are kept (paper: 52k)."
    )
    prompt_instructions: int = Field(
        P.NUM_PROMPT_INSTRUCTIONS, ge=1, description="Tasks shown per prompt (paper: 8)."
    )
    machine_in_prompt: int = Field(
        P.NUM_MACHINE_IN_PROMPT,
        ge=0,
        description="Of which machine-generated, once any exist (paper: 2; the rest human).",
    )
    rouge_threshold: float = Field(
        P.ROUGE_THRESHOLD,
        ge=0,
        le=1,
        description="Keep a new instruction only if its ROUGE-L with every pool instruction is "
        "at most this (paper: 0.7).",
    )
    blocklist: list[str] = Field(
        default_factory=lambda: list(SELF_INSTRUCT_BLOCKLIST),
        description="Instructions naming these words (whole word) are dropped (paper: image, "
        "picture, graph, file, map, draw, plot, go to, ...).",
    )
    min_words: int = Field(4, ge=1, description="Fewer words: dropped (paper: <= 3 dropped).")
    max_words: int = Field(150, ge=1, description="More words: dropped (paper: 150).")
    banned_prefixes: list[str] = Field(
        default_factory=lambda: ["Write a program"],
        description="Instructions starting so are dropped (paper: 'Write a program').",
    )
    drop_truncated: bool = Field(
        True,
        description="Drop a whole generation cut by max_tokens (paper); false: drop only "
        "its last, possibly cut, task.",
    )
    generate_instances: bool = Field(True, description="Run classification + instance stages.")
    sampling: SelfInstructSampling = Field(
        default_factory=SelfInstructSampling, description="Sampling per stage."
    )
    structured_output: StructuredOutput = Field(
        default_factory=StructuredOutput, description="JSON-schema output instead of free text."
    )
    seed: int = Field(42, description="Seed of prompt sampling (paper's code: 42).")


@JOBS.register("self_instruct")
class SelfInstruct(Job):
    """Self-Instruct: bootstrap tasks from seeds, classify, write instances."""

    config_cls = SelfInstructConfig
    engine_lifetime = "run"  # rounds x stages: one engine pool for the whole run

    def preflight(self, config: SelfInstructConfig) -> None:
        if config.prompt_instructions - config.machine_in_prompt < 1:
            raise ConfigError("field 'machine_in_prompt': must leave at least one human task")
        P.check_seed_tasks(config.seed_tasks, config.prompt_instructions, "prompt_instructions")

    def run(self, ctx: JobContext) -> None:
        cfg: SelfInstructConfig = ctx.config  # type: ignore[assignment]
        rec = ctx.record
        apply_prompt_format(ctx, cfg.prompt_format)
        seeds = P.load_seed_tasks(cfg.seed_tasks)
        rec.counts["seed_tasks"] = len(seeds)
        gen = StageIO.of(ctx)
        pool = NoveltyPool(cfg.rouge_threshold, [t["instruction"] for t in seeds])
        try:
            machine = self._bootstrap(ctx, cfg, seeds, pool, gen)
        finally:
            pool.close()
        rows: list[dict] = []
        if cfg.generate_instances and machine:
            self._classify(ctx, cfg, machine, gen)
        with rec.stage("write_instructions"):
            write_table_dir(ctx.layout.sub("instructions"), _instructions_table(machine))
        if cfg.generate_instances and machine:
            rows = self._instances(ctx, cfg, machine, gen)
        write_instruction_dataset(ctx, rows, cfg.judge)
        rec.counts["instructions"] = len(machine)
        rec.counts["classification_instructions"] = sum(
            1 for m in machine if m.get("is_classification")
        )

    # -- 1. bootstrap new instructions, round after round ---------------------------------------
    def _bootstrap(self, ctx, cfg: SelfInstructConfig, seeds, pool: NoveltyPool, gen) -> list[dict]:
        so = cfg.structured_output
        sampling = stage_sampling(cfg.sampling.generate, so.tasks_schema if so.enabled else None)
        human = [(t["id"], t["instruction"]) for t in seeds]
        machine: list[dict] = []
        counts = {"candidates": 0, "kept": 0, "rejected": 0}

        def make_requests(rnd: int, rng: random.Random) -> list[dict]:
            requests = []
            for k in range(cfg.requests_per_round):
                shown = rng.sample(
                    [(m["id"], m["instruction"]) for m in machine],
                    min(cfg.machine_in_prompt, len(machine)),
                )
                shown += rng.sample(human, cfg.prompt_instructions - len(shown))
                rng.shuffle(shown)
                prompt = P.generation_prompt([text for _, text in shown])
                requests.append(
                    {
                        "id": request_id(
                            f"gen-r{rnd:05d}-q{k:04d}", prompt, sampling, gen.model_id
                        ),
                        "prompt": prompt,
                        "sampling": sampling,
                        "shown_ids": [i for i, _ in shown],
                    }
                )
            return requests

        def accept(rnd: int, requests: list[dict], out: list[dict]):
            shown_of = {r["id"]: r["shown_ids"] for r in requests}
            return self._filter_round(cfg, rnd, out, shown_of, pool, machine, counts)

        run_rounds(
            gen,
            stage="generate",
            target=cfg.target_instructions,
            have=lambda: len(machine),
            make_requests=make_requests,
            accept=accept,
            seed=cfg.seed,
            max_rounds=cfg.max_rounds,
            patience=cfg.patience,
        )
        ctx.record.counts["bootstrap"] = counts
        return machine

    def _filter_round(self, cfg, rnd, out, shown_of, pool, machine, counts) -> tuple[int, list]:
        rejects: list[dict] = []
        cands: list[dict] = []
        for row in out:
            rid = row["request_id"]
            if row["error"]:
                rejects.append(
                    reject(
                        "self_instruct",
                        error_reason(row["error"]),
                        stage="generate",
                        id=rid,
                        detail=row["error"],
                    )
                )
                continue
            if cfg.structured_output.enabled:
                texts = parse_tasks_json(row["completion"])
            else:
                texts = parse_tasks(
                    row["completion"],
                    finish_reason=row["finish_reason"],
                    drop_truncated=cfg.drop_truncated,
                )
            if not texts:
                why = "truncated" if row["finish_reason"] == "length" else "no_tasks_parsed"
                rejects.append(
                    reject(
                        "self_instruct", why, stage="parse", id=rid, detail=row["completion"][:300]
                    )
                )
            for k, text in enumerate(texts):
                cid = f"{rid}-t{k}"
                why = instruction_reject_reason(
                    text,
                    blocklist=cfg.blocklist,
                    min_words=cfg.min_words,
                    max_words=cfg.max_words,
                    banned_prefixes=tuple(cfg.banned_prefixes),
                )
                if why:
                    rejects.append(
                        reject("self_instruct", why, stage="filter", id=cid, detail=text)
                    )
                else:
                    cands.append({"id": cid, "request_id": rid, "instruction": text})
        counts["candidates"] += len(cands)
        kept, more = offer(pool, cands, cfg.target_instructions - len(machine), "self_instruct")
        rejects += more
        for c in kept:
            machine.append(
                {
                    "id": f"si-{text_hash(c['instruction'], 16)}",
                    "round": rnd,
                    "instruction": c["instruction"],
                    "request_id": c["request_id"],
                    "seed_ids": list(shown_of[c["request_id"]]),
                    "max_rouge_l": c["max_rouge_l"],
                }
            )
        counts["kept"] += len(kept)
        counts["rejected"] += len(rejects)
        return len(kept), rejects

    # -- 2. is it a classification task? ----------------------------------------------------
    def _classify(self, ctx, cfg: SelfInstructConfig, machine: list[dict], gen) -> None:
        schema = cfg.structured_output.classify_schema if cfg.structured_output.enabled else None
        gens = generate_per_item(
            gen,
            "classify",
            {m["id"]: P.classification_prompt(m["instruction"]) for m in machine},
            lambda key: stage_sampling(cfg.sampling.classify, schema, key=key),
        )
        unparsed = 0
        for m in machine:
            row = (gens[m["id"]] or [None])[0]
            answer = None
            if row is not None and not row["error"]:
                text = row["completion"]
                if schema is not None:
                    text = str((json_object(text) or {}).get("is_classification", ""))
                answer = parse_is_classification(text)
            unparsed += answer is None
            # The paper counts anything but "Yes" as not classification.
            m["is_classification"] = bool(answer)
        ctx.record.counts["classification_unparsed"] = unparsed

    # -- 3. instances: input-first, or output-first for classification ------------------------
    def _instances(self, ctx, cfg: SelfInstructConfig, machine: list[dict], gen) -> list[dict]:
        so = cfg.structured_output
        clf_of = {m["id"]: m["is_classification"] for m in machine}

        def sampling_of(key: str) -> str:
            clf = clf_of[key]
            schema = (
                (so.clf_instances_schema if clf else so.instances_schema) if so.enabled else None
            )
            return stage_sampling(
                cfg.sampling.clf_instances if clf else cfg.sampling.instances, schema, key=key
            )

        gens = generate_per_item(
            gen,
            "instances",
            {m["id"]: P.instance_prompt(m["instruction"], m["is_classification"]) for m in machine},
            sampling_of,
        )
        rows, rejects = [], []
        for m in machine:
            row = (gens[m["id"]] or [None])[0]
            if row is None or row["error"]:
                why = error_reason(row["error"]) if row else "generation_error"
                rejects.append(
                    reject(
                        "self_instruct",
                        why,
                        stage="instances",
                        id=m["id"],
                        detail=(row or {}).get("error") or "no row",
                    )
                )
                continue
            clf = m["is_classification"]
            if so.enabled:
                pairs = parse_instances_json(row["completion"], clf)
            else:
                pairs = parse_instances(row["completion"], clf, finish_reason=row["finish_reason"])
            kept, dropped = filter_instances(pairs)
            for (inp, outp), why in dropped:
                rejects.append(
                    reject(
                        "self_instruct",
                        why,
                        stage="instances",
                        id=m["id"],
                        detail=json.dumps({"input": inp, "output": outp})[:500],
                    )
                )
            if not pairs:
                rejects.append(
                    reject(
                        "self_instruct",
                        "no_instances_parsed",
                        stage="instances",
                        id=m["id"],
                        detail=row["completion"][:300],
                    )
                )
            for inp, outp in kept:
                rows.append(
                    {
                        "id": record_id("self_instruct", m["instruction"], inp, outp),
                        "instruction": m["instruction"],
                        "input": inp,
                        "output": outp,
                        "method": "self_instruct",
                        "round": m["round"],
                        "seed_ids": m["seed_ids"],
                        "request_id": m["request_id"],
                        "model": ctx.model.name,
                        "run_id": ctx.run_id,
                        "extra": {
                            "is_classification": clf,
                            "instruction_id": m["id"],
                            "max_rouge_l": m["max_rouge_l"],
                        },
                    }
                )
        write_rejects(ctx.layout.rejects, rejects, "self_instruct-instances")
        ctx.record.counts["instances_rejected"] = len(rejects)
        return rows


def _instructions_table(machine: list[dict]):
    import pyarrow as pa

    cols = [
        "id",
        "instruction",
        "round",
        "request_id",
        "seed_ids",
        "max_rouge_l",
        "is_classification",
    ]
    return pa.Table.from_pylist(
        [{c: m.get(c) for c in cols} for m in machine],
        schema=pa.schema(
            [
                ("id", pa.string()),
                ("instruction", pa.string()),
                ("round", pa.int64()),
                ("request_id", pa.string()),
                ("seed_ids", pa.list_(pa.string())),
                ("max_rouge_l", pa.float64()),
                ("is_classification", pa.bool_()),
            ]
        ),
    )
