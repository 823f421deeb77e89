"""The SPIN loop: stages and job (see the package docstring)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from synth_ray.config import ConfigError
from synth_ray.filters.novelty import rouge_l
from synth_ray.io import fs
from synth_ray.io.layout import read_parquet_dir
from synth_ray.io.rejects import reject, write_rejects
from synth_ray.job import JOBS, JobContext
from synth_ray.loops.base import (
    Iteration,
    IterativeJob,
    check_loop_engine,
    dataset_record,
    model_record,
)
from synth_ray.loops.self_rewarding.seeds import load_ift, split_heldout
from synth_ray.loops.spin.config import SpinConfig
from synth_ray.loops.swap import ServedModel
from synth_ray.models.resolve import ResolvedModel, resolve_model
from synth_ray.stages.generate import generate_rows, read_generations
from synth_ray.stages.records import request_id, stage_sampling, write_preferences
from synth_ray.train.api import train_model

log = logging.getLogger(__name__)

METHOD = "spin"


def split_data(cfg: SpinConfig, rejects_dir: str | None = None):
    """(training pairs, held-out pairs) of the SFT dataset, read without Ray; each pair an
    ``instruction`` (with its input) and the dataset's ``output``."""
    pairs = load_ift(cfg.data, rejects_dir)
    train, held = split_heldout(pairs, cfg.heldout)
    held_set = set(held)
    first = {}
    for p in pairs:  # a held-out prompt's reference: its first response in the file
        if p["instruction"] in held_set:
            first.setdefault(p["instruction"], p["output"])
    train = train[: cfg.max_prompts] if cfg.max_prompts else train
    return train, [{"instruction": h, "output": first[h]} for h in held]


def answer_requests(prompts: list[str], sampling_cfg, model: ResolvedModel, prefix: str):
    """One request per prompt for ``model``: its id hashes the prompt, the sampling (seeded per
    prompt) and the model's fingerprint, so a retrained model generates anew."""
    out = []
    for x in prompts:
        msgs = [{"role": "user", "content": x}]
        sampling = stage_sampling(sampling_cfg, None, x)
        rid = request_id(prefix, msgs, sampling, model.fingerprint)
        out.append({"id": rid, "messages": msgs, "sampling": sampling})
    return out


def spin_pairs(
    pairs: list[dict[str, str]], gens: dict[str, dict], reqs: list[dict], model: str, t: int
) -> tuple[list[dict], list[dict]]:
    """(preference rows, rejects): chosen = the dataset's response, rejected = M_t's answer
    (``gens`` by request id). A failed, empty or identical answer is a reject with its reason."""
    prefs, rejects = [], []
    for p, r in zip(pairs, reqs):
        g = gens.get(r["id"])
        answer = ((g or {}).get("completion") or "").strip()
        why = None
        if g is None or g.get("error"):
            why = ("generation_failed", (g or {}).get("error") or "no generation row")
        elif not answer:
            why = ("empty_generation", "M_t answered nothing")
        elif answer == p["output"].strip():
            why = ("generation_equals_data", "M_t reproduced the dataset's response")
        if why:
            rejects.append(reject("pairs", why[0], stage="pairs", id=r["id"], detail=why[1]))
            continue
        prefs.append(
            {
                "prompt": p["instruction"],
                "chosen": p["output"],
                "rejected": answer,
                "model_chosen": "data",
                "model_rejected": model,
                "method": METHOD,
                "iteration": t,
                "extra": {"request_id": r["id"], "finish_reason": g.get("finish_reason")},
            }
        )
    return prefs, rejects


def _by_request(it: Iteration, reqs: list[dict]) -> dict[str, dict]:
    """The generate stage's rows of ``reqs`` (one sample each), by request id."""
    gens = read_generations(it.sub("data/generate"), {r["id"] for r in reqs})
    return {g["request_id"]: g for g in gens}


def mean_rouge(answers: dict[str, str], refs: dict[str, str]) -> float | None:
    """Mean ROUGE-L F of each held-out answer against the dataset's response."""
    scores = [rouge_l(refs[k], answers[k]) for k in refs if k in answers]
    return round(sum(scores) / len(scores), 4) if scores else None


@JOBS.register(METHOD)
class Spin(IterativeJob):
    """SPIN: M_t's answers against the data's, DPO with M_t as the reference -> M_{t+1}."""

    config_cls = SpinConfig

    def preflight(self, config: SpinConfig) -> None:  # type: ignore[override]
        check_loop_engine(config)
        try:
            train, _ = split_data(config)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"field 'data': {exc}") from None
        if not train:
            raise ConfigError("field 'data': no usable (prompt, response) pairs")

    def run(self, ctx: JobContext) -> None:
        cfg: SpinConfig = ctx.config  # type: ignore[assignment]
        served = ServedModel(cfg.engine, cfg.swap)
        self.run_iterations(
            ctx,
            served,
            first=lambda it0: ctx.model,
            step=lambda it, m_t: self._iteration(ctx, it, served, m_t),
        )

    def _iteration(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> ResolvedModel:
        cfg: SpinConfig = ctx.config
        train, held = split_data(cfg)
        src = cfg.data or "shipped Self-Instruct seed instances"
        it.manifest["datasets"]["sft_data"] = {"path": src, "rows": len(train), "role": "in"}
        it.manifest["datasets"]["heldout"] = {"path": src, "rows": len(held), "role": "in"}
        gen = it.stage("generate", lambda: self._generate(ctx, it, served, m_t))
        pairs = it.stage("pairs", lambda: self._pairs(ctx, it, m_t))
        trained = it.stage("train", lambda: self._train(ctx, it, served, m_t))
        m_next = resolve_model(trained["model"])
        it.manifest["model_out"] = model_record(m_next)
        swap = it.stage("swap", lambda: {"probe": served.use(m_next, parent=m_t)})
        it.manifest["probe"] = swap["probe"]
        ev = it.stage("evaluate", lambda: self._evaluate(ctx, it, served, m_t, m_next))
        dpo = ((trained.get("metrics") or {}).get("dpo") or {}).get("last") or {}
        it.finish(
            {
                "generated": gen["answers"],
                "pairs": pairs["pairs"],
                "rejected": pairs["rejected"],
                "train_rows": trained.get("rows"),
                "dpo_reward_margin": dpo.get("rewards/margins"),
                "dpo_reward_accuracy": dpo.get("rewards/accuracies"),
                "heldout_rouge_l_before": ev.get("rouge_l_before"),
                "heldout_rouge_l_after": ev.get("rouge_l_after"),
            }
        )
        return m_next

    def _generate(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> dict[str, Any]:
        """M_t's sampled answer to every training prompt, and its greedy answers to the held-out
        prompts (the evaluate stage's "before")."""
        cfg: SpinConfig = ctx.config
        probe = served.ensure(m_t)
        train, held = split_data(cfg, ctx.layout.rejects if it.t == 0 else None)
        reqs = answer_requests(
            [p["instruction"] for p in train], cfg.response_sampling, m_t, "spin"
        )
        reqs += answer_requests(
            [h["instruction"] for h in held], cfg.evaluation_sampling, m_t, "held"
        )
        gens, stats = generate_rows(
            served.engine, reqs, it.sub("data/generate"), ctx.run_id, "messages"
        )
        return {
            "probe": probe,
            "requested": len(reqs),
            "answers": len(gens),
            "errors": sum(1 for g in gens if g["error"]),
            "generated": stats.generated,
            "skipped_done": stats.skipped_done,
        }

    def _pairs(self, ctx, it: Iteration, m_t: ResolvedModel) -> dict[str, Any]:
        cfg: SpinConfig = ctx.config
        train, _ = split_data(cfg)
        reqs = answer_requests(
            [p["instruction"] for p in train], cfg.response_sampling, m_t, "spin"
        )
        prefs, rejects = spin_pairs(train, _by_request(it, reqs), reqs, m_t.fingerprint, it.t)
        for p in prefs:
            p["run_id"] = ctx.run_id
        write_rejects(it.sub("rejects"), rejects, "pairs")
        write_preferences(it.sub("preferences"), prefs)
        return {
            "datasets": {"preferences": dataset_record(it.sub("preferences"))},
            "prompts": len(train),
            "pairs": len(prefs),
            "rejected": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        }

    def _train(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> dict[str, Any]:
        """The SPIN step: DPO of M_t on this iteration's pairs (and the previous iteration's,
        ``mix_previous``) with M_t as the reference. No pairs: M_{t+1} = M_t, said so."""
        cfg: SpinConfig = ctx.config
        sources = [it.sub("preferences")]
        if cfg.mix_previous and it.t > 0:
            sources.insert(0, fs.join(ctx.layout.root, f"iter_{it.t - 1}", "preferences"))
        rows = []
        for path in sources:
            table = read_parquet_dir(path)
            rows += table.to_pylist() if table is not None else []
        it.manifest["settings"]["dpo_reference"] = model_record(m_t)
        it.manifest["settings"]["train_data"] = sources
        if not rows:
            return {"model": m_t.source, "rows": 0, "skipped": "no pairs"}
        settings = {**cfg.dpo, "ref_model": m_t.source}
        served.before_training(settings.get("scaling") or {})
        res = train_model("dpo", rows, m_t.source, it.sub("m_next"), settings)
        return {
            "model": res.model_dir,
            "rows": len(rows),
            "sources": sources,
            "metrics": res.metrics,
            "reused": res.reused,
            "base": model_record(m_t),
            "reference": model_record(m_t),
        }

    def _evaluate(self, ctx, it: Iteration, served, m_t, m_next) -> dict[str, Any]:
        """Held-out prompts answered greedily by M_t (generate stage) and M_{t+1} (here):
        mean ROUGE-L of each model's answers against the dataset's responses."""
        cfg: SpinConfig = ctx.config
        _, held = split_data(cfg)
        if not held:
            return {"heldout": 0}
        served.ensure(m_next)
        prompts = [h["instruction"] for h in held]
        refs = {h["instruction"]: h["output"] for h in held}
        old = answer_requests(prompts, cfg.evaluation_sampling, m_t, "held")
        new = answer_requests(prompts, cfg.evaluation_sampling, m_next, "held")
        gens, _ = generate_rows(served.engine, new, it.sub("data/heldout"), ctx.run_id, "messages")
        by_new = {g["request_id"]: g for g in gens}
        by_old = _by_request(it, old)

        def answers(reqs, by):
            out = {}
            for x, r in zip(prompts, reqs):
                g = by.get(r["id"])
                if g is not None and not g["error"]:
                    out[x] = g["completion"] or ""
            return out

        return {
            "heldout": len(held),
            "rouge_l_before": mean_rouge(answers(old, by_old), refs),
            "rouge_l_after": mean_rouge(answers(new, by_new), refs),
        }
