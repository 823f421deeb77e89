"""The Instruction Backtranslation loop: config, stages, job (see the package docstring)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, ValidationError, field_validator

from synth_ray.config import ConfigError, format_validation_error
from synth_ray.engines.base import SamplingConfig
from synth_ray.io import fs
from synth_ray.io.layout import read_parquet_dir
from synth_ray.io.readers import InputError, ReadOptions, find_inputs, read_documents
from synth_ray.io.rejects import reject, write_rejects
from synth_ray.job import JOBS, JobContext
from synth_ray.loops.backtranslation import segments as S
from synth_ray.loops.base import (
    Iteration,
    IterativeJob,
    LoopConfig,
    check_loop_engine,
    dataset_record,
    model_record,
)
from synth_ray.loops.swap import ServedModel
from synth_ray.models.resolve import ResolvedModel, resolve_model
from synth_ray.stages.generate import generate_rows
from synth_ray.stages.judge import JudgeStageConfig, judge_rows
from synth_ray.stages.records import request_id, write_table_dir
from synth_ray.train.api import train_model
from synth_ray.train.data import instruction_pairs
from synth_ray.train.sft_config import SFTJobConfig

log = logging.getLogger(__name__)

SEED_TAG = "Answer in the style of an AI Assistant."
AUGMENTED_TAG = "Answer with knowledge from web search."
BACKWARD_SYSTEM = "Write the instruction that the following text is the answer to."


def _curation_default() -> JudgeStageConfig:
    return JudgeStageConfig(
        rubric="curation5", threshold=None, input_field=None, max_tokens=192, seed=0
    )


class BacktranslationConfig(LoopConfig):
    method: Literal["backtranslation"] = Field(
        "backtranslation", description="Instruction Backtranslation (Li et al. 2023)."
    )
    input: str | list[str] = Field(
        "examples/c4_sample.jsonl",
        description="Unlabelled web documents (JSONL/Parquet files, folders, globs, URIs).",
    )
    text_field: str = Field("text", description="Document field holding the text.")
    id_field: str | None = Field("id", description="Document id field (null: line-based ids).")
    max_doc_bytes: int = Field(1_000_000, ge=1, description="Larger documents are rejected.")
    seeds: str | None = Field(
        None,
        description="Seed pairs: JSONL/Parquet of instruction/input/output rows. Null: the "
        "instances of the shipped Self-Instruct seed tasks (the paper: 3,200 OpenAssistant "
        "first turns).",
    )
    max_seeds: int | None = Field(None, ge=1, description="Use at most this many seed pairs.")
    min_chars: int = Field(120, ge=1, description="Shorter segments are rejected (our bound).")
    max_chars: int = Field(1500, ge=16, description="Segment length bound (our bound).")
    max_segments: int | None = Field(
        None, ge=1, description="Use at most this many kept segments (in id order)."
    )
    augment_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=96, seed=0),
        description="Sampling of Myx's instructions (ours: the survey gives none).",
    )
    keep_truncated: bool = Field(
        False,
        description="Keep instructions cut off at augment_sampling.max_tokens (default: "
        "reject them as instruction_truncated). The tiny test model never stops by itself.",
    )
    curation: JudgeStageConfig = Field(
        default_factory=_curation_default,
        description="Self-curation by M_t: the judge stage with the survey's 5-point prompt "
        "(rubric curation5). Its threshold is not used: select_k splits.",
    )
    select_k: Literal[4, 5] = Field(5, description="Train on A_k: pairs scored >= k (paper: 5).")
    seed_tag: str = Field(SEED_TAG, description="System message of seed examples (paper's).")
    augmented_tag: str = Field(
        AUGMENTED_TAG, description="System message of augmented examples (paper's)."
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="SFT settings for M0, Myx and every M_{t+1} (fields of `method: sft`, e.g. "
        "epochs, learning_rate, max_steps, scaling).",
    )
    train_from: Literal["base", "previous"] = Field(
        "base",
        description="base: every M_{t+1} is finetuned from the base model (paper); previous: "
        "from M_t.",
    )

    @field_validator("train")
    @classmethod
    def _train_settings(cls, v: dict[str, Any]) -> dict[str, Any]:
        raw = {"method": "sft", "model": "tiny", "output_dir": "x", "input": "x"}
        try:
            SFTJobConfig.model_validate({**v, **raw})
        except ValidationError as exc:
            raise ValueError(format_validation_error(exc, "SFT settings")) from None
        return v


def _sft_settings(cfg: BacktranslationConfig) -> dict[str, Any]:
    return {k: v for k, v in cfg.train.items() if k not in ("method", "model", "input")}


def seed_pairs(cfg: BacktranslationConfig, rejects_dir: str | None = None) -> list[dict[str, str]]:
    """(instruction with its input, output) pairs, in a fixed order. A ``seeds`` file is read
    in this process (no Ray: preflight calls this) as SFT rows; its bad records are skipped,
    and written as rejects to ``rejects_dir`` when given."""
    if cfg.seeds is None:
        from synth_ray.methods.self_instruct.prompts import load_seed_tasks

        rows = [
            {"instruction": t["instruction"], "input": i["input"], "output": i["output"]}
            for t in load_seed_tasks()
            for i in t["instances"]
        ]
    else:
        from synth_ray.train.data import read_training_rows_local

        rows, rejects = read_training_rows_local(cfg.seeds, "sft")
        if rejects_dir:
            write_rejects(rejects_dir, rejects, "seeds")
    pairs = instruction_pairs(rows)
    return pairs[: cfg.max_seeds] if cfg.max_seeds else pairs


def chat_row(system: str, user: str, assistant: str, origin: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
        "origin": origin,
    }


@JOBS.register("backtranslation")
class Backtranslation(IterativeJob):
    """Instruction Backtranslation: Myx labels web text, M_t curates, M_{t+1} trains (loop)."""

    config_cls = BacktranslationConfig

    def preflight(self, config: BacktranslationConfig) -> None:  # type: ignore[override]
        try:
            find_inputs(config.input)
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        check_loop_engine(config)
        if not seed_pairs(config):
            raise ConfigError("field 'seeds': no usable seed pairs")

    def run(self, ctx: JobContext) -> None:
        cfg: BacktranslationConfig = ctx.config  # type: ignore[assignment]
        base = ctx.model
        served = ServedModel(cfg.engine, cfg.swap)
        self.run_iterations(
            ctx,
            served,
            first=lambda it0: self._prelude(ctx, it0, served, base),
            step=lambda it, m_t: self._iteration(ctx, it, served, base, m_t),
        )

    # -- iteration 0 only: the seed models, the segments, self-augmentation --

    def _prelude(self, ctx, it: Iteration, served: ServedModel, base) -> ResolvedModel:
        cfg: BacktranslationConfig = ctx.config
        pairs = seed_pairs(cfg, ctx.layout.rejects)
        settings = _sft_settings(cfg)

        def seed_forward():
            rows = [chat_row(cfg.seed_tag, p["instruction"], p["output"], "seed") for p in pairs]
            res = train_model("sft", rows, base.spec, it.sub("m0"), settings)
            return {"model": res.model_dir, "metrics": res.metrics, "rows": len(rows)}

        def seed_backward():
            rows = [chat_row(BACKWARD_SYSTEM, p["output"], p["instruction"], "seed") for p in pairs]
            res = train_model("sft", rows, base.spec, it.sub("myx"), settings)
            return {"model": res.model_dir, "metrics": res.metrics, "rows": len(rows)}

        m0 = it.stage("seed_forward", seed_forward)
        myx = it.stage("seed_backward", seed_backward)
        it.stage("segments", lambda: self._segments(ctx, it))
        myx_model = resolve_model(myx["model"])
        it.stage("augment", lambda: self._augment(ctx, it, served, myx_model))
        return resolve_model(m0["model"])

    def _segments(self, ctx, it: Iteration) -> dict[str, Any]:
        cfg: BacktranslationConfig = ctx.config
        opts = ReadOptions(cfg.text_field, cfg.id_field, cfg.max_doc_bytes, ctx.layout.rejects)
        docs = read_documents(cfg.input, opts)
        segs = docs.map_batches(
            S.segment_documents,
            fn_kwargs={"min_chars": cfg.min_chars, "max_chars": cfg.max_chars},
            batch_format="pyarrow",
        ).take_all()
        segs = S.deduplicate(segs)
        kept = sorted((s for s in segs if not s["reject"]), key=lambda s: s["segment_id"])
        over = kept[cfg.max_segments :] if cfg.max_segments else []
        for s in over:
            s["reject"], s["detail"] = "segment_over_limit", f"max_segments={cfg.max_segments}"
        kept = kept[: cfg.max_segments] if cfg.max_segments else kept
        rejects = [
            reject(
                s["source"] or "",
                s["reject"],
                stage="segments",
                id=s["segment_id"],
                detail=s["detail"] or "",
            )
            for s in segs
            if s["reject"]
        ]
        write_rejects(ctx.layout.rejects, rejects, "segments")
        path = it.sub("segments")
        write_table_dir(path, pa.Table.from_pylist(kept, schema=S.SEGMENT_SCHEMA))
        reasons = Counter(s["reject"] for s in segs if s["reject"])
        return {
            "datasets": {"segments": dataset_record(path)},
            "segments": len(segs),
            "kept": len(kept),
            "rejected": dict(sorted(reasons.items())),
        }

    def _augment(self, ctx, it: Iteration, served: ServedModel, myx: ResolvedModel):
        cfg: BacktranslationConfig = ctx.config
        probe = served.use(myx)
        segs = read_parquet_dir(it.sub("segments")).to_pylist()
        sampling = cfg.augment_sampling.to_json()
        requests = []
        for s in segs:
            msgs = [
                {"role": "system", "content": BACKWARD_SYSTEM},
                {"role": "user", "content": s["text"]},
            ]
            rid = request_id("augment", msgs, sampling, myx.fingerprint)
            requests.append({"id": rid, "messages": msgs, "sampling": sampling, "seg": s})
        sent = [{k: v for k, v in r.items() if k != "seg"} for r in requests]
        gens, stats = generate_rows(
            served.engine, sent, it.sub("data/augment"), ctx.run_id, "messages"
        )
        by_id = {g["request_id"]: g for g in gens}
        pairs, rejects = [], []
        for r in requests:
            g, s = by_id.get(r["id"]), r["seg"]
            text = (g or {}).get("completion") or ""
            why = None
            if g is None or g["error"]:
                why = ("augment_failed", (g or {}).get("error") or "no generation row")
            elif not text.strip():
                why = ("empty_instruction", "Myx wrote nothing")
            elif g["finish_reason"] == "length" and not cfg.keep_truncated:
                why = ("instruction_truncated", text[:300])
            if why:
                rejects.append(
                    reject(
                        s["source"] or "",
                        why[0],
                        stage="augment",
                        id=s["segment_id"],
                        detail=why[1][:300],
                    )
                )
                continue
            pairs.append(
                {
                    "id": f"bt-{s['segment_id']}",
                    "segment_id": s["segment_id"],
                    "instruction": text.strip(),
                    "output": s["text"],
                    "request_id": r["id"],
                    "model": myx.fingerprint,
                }
            )
        write_rejects(ctx.layout.rejects, rejects, "augment")
        path = it.sub("augmented")
        write_table_dir(path, pa.Table.from_pylist(pairs))
        return {
            "datasets": {"augmented": dataset_record(path)},
            "probe": probe,
            "generated": stats.generated,
            "skipped_done": stats.skipped_done,
            "pairs": len(pairs),
            "rejected": dict(Counter(r["reason"] for r in rejects)),
        }

    # -- every iteration: self-curation by M_t, M_{t+1}, the swap --

    def _iteration(self, ctx, it: Iteration, served, base, m_t: ResolvedModel) -> ResolvedModel:
        cfg: BacktranslationConfig = ctx.config
        augmented = fs.join(ctx.layout.root, "iter_0", "augmented")
        it.manifest["datasets"]["augmented"] = {**dataset_record(augmented), "role": "in"}
        it.manifest["settings"]["curation"] = cfg.curation.model_dump(mode="json")
        it.manifest["settings"]["select_k"] = cfg.select_k
        cur = it.stage("curate", lambda: self._curate(cfg, it, served, m_t, augmented))
        sel = it.stage("select", lambda: self._select(ctx, it))
        parent = base.spec if cfg.train_from == "base" else m_t.source
        trained = it.stage("train", lambda: self._train(it, served, parent, cfg))
        m_next = resolve_model(trained["model"])
        it.manifest["model_out"] = model_record(m_next)
        swap = it.stage("swap", lambda: {"probe": served.use(m_next, parent=m_t)})
        it.manifest["probe"] = swap["probe"]
        metrics = {
            "augmented_pairs": cur["pairs"],
            "scored": cur["scored"],
            "parse_rate": cur["parse_rate"],
            "score_histogram": cur["histogram"],
            "A4": cur["A4"],
            "A5": cur["A5"],
            "train_rows": sel["rows"],
            "loss_first": (trained.get("metrics") or {}).get("first_logged_loss"),
            "loss_last": (trained.get("metrics") or {}).get("last_logged_loss"),
        }
        it.finish(metrics)
        return m_next

    def _curate(self, cfg, it: Iteration, served: ServedModel, m_t, augmented: str) -> dict:
        probe = served.use(m_t)
        rows = read_parquet_dir(augmented).to_pylist()
        judge = cfg.curation.model_copy(update={"threshold": None})
        kept, counts = judge_rows(rows, judge, served.engine, it.sub("judge"), it.sub("rejects"))
        scores = [r["extra"]["judge"]["score"] for r in kept]
        samples = [s for r in kept for s in r["extra"]["judge"]["samples"]]
        hist = Counter(str(int(round(s))) for s in scores)
        scored = [
            {
                **{k: r[k] for k in ("id", "segment_id", "instruction", "output")},
                "score": r["extra"]["judge"]["score"],
            }
            for r in kept
        ]
        path = it.sub("curated")
        write_table_dir(path, pa.Table.from_pylist(scored) if scored else pa.table({"id": []}))
        n_samples = len(rows) * cfg.curation.samples
        return {
            "datasets": {"curated": dataset_record(path)},
            "probe": probe,
            "pairs": len(rows),
            "scored": len(scored),
            "unscored": counts["unscored"],
            "parse_rate": round(len(samples) / n_samples, 4) if n_samples else None,
            "histogram": dict(sorted(hist.items())),
            "A4": sum(s >= 4 for s in scores),
            "A5": sum(s >= 5 for s in scores),
        }

    def _select(self, ctx, it: Iteration) -> dict[str, Any]:
        cfg: BacktranslationConfig = ctx.config
        curated = read_parquet_dir(it.sub("curated"))
        chosen = [r for r in (curated.to_pylist() if curated else []) if r["score"] >= cfg.select_k]
        below = [
            reject(
                "curation",
                "below_select_k",
                stage=f"select-i{it.t}",
                id=r["id"],
                detail=f"score {r['score']:.3g} < {cfg.select_k}",
            )
            for r in (curated.to_pylist() if curated else [])
            if r["score"] < cfg.select_k
        ]
        write_rejects(it.sub("rejects"), below, "select")
        rows = [
            chat_row(cfg.seed_tag, p["instruction"], p["output"], "seed") for p in seed_pairs(cfg)
        ]
        rows += [
            chat_row(cfg.augmented_tag, r["instruction"], r["output"], "augmented")
            for r in sorted(chosen, key=lambda r: r["id"])
        ]
        path = it.sub("train_data")
        write_table_dir(path, pa.Table.from_pylist(rows))
        return {
            "datasets": {"train_data": dataset_record(path)},
            "rows": len(rows),
            "augmented": len(chosen),
            "seed": len(rows) - len(chosen),
        }

    def _train(self, it: Iteration, served, parent: str, cfg) -> dict[str, Any]:
        served.before_training(cfg.train.get("scaling") or {})
        res = train_model("sft", it.sub("train_data"), parent, it.sub("m_next"), _sft_settings(cfg))
        return {"model": res.model_dir, "metrics": res.metrics, "reused": res.reused}


def summarize(output_dir: str) -> list[dict[str, Any]]:
    """Per iteration metrics from the manifests (for reports and benchmarks)."""
    from synth_ray.loops.base import read_manifests

    return [
        dict(m.get("metrics") or {}, iteration=m["iteration"]) for m in read_manifests(output_dir)
    ]
