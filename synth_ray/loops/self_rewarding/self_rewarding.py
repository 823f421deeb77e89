"""The Self-Rewarding loop: stages and job (see the package docstring)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pyarrow as pa

from synth_ray.config import ConfigError
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
from synth_ray.loops.self_rewarding import parts as P
from synth_ray.loops.self_rewarding import seeds as S
from synth_ray.loops.self_rewarding.config import (
    SelfRewardingConfig,
    dpo_settings,
    sft_settings,
)
from synth_ray.loops.swap import ServedModel
from synth_ray.models.resolve import ResolvedModel, resolve_model
from synth_ray.stages.generate import generate_rows, read_generations
from synth_ray.stages.judge import judge_rows
from synth_ray.stages.records import request_id, stage_sampling, write_preferences, write_table_dir
from synth_ray.train.api import train_model

log = logging.getLogger(__name__)

METHOD = "self_rewarding"


def _data(cfg: SelfRewardingConfig, rejects_dir: str | None = None):
    """(training IFT pairs, EFT rows, held-out instructions), read without Ray."""
    ift, held = S.split_heldout(S.load_ift(cfg.ift, rejects_dir), cfg.heldout)
    ift = ift[: cfg.max_ift] if cfg.max_ift else ift
    eft = S.load_eft(cfg.eft, ift, cfg.max_eft, rejects_dir)
    return ift, eft, held


@JOBS.register(METHOD)
class SelfRewarding(IterativeJob):
    """Self-Rewarding LMs: M_t writes prompts, answers them, judges its answers, DPO -> M_{t+1}."""

    config_cls = SelfRewardingConfig

    def preflight(self, config: SelfRewardingConfig) -> None:  # type: ignore[override]
        check_loop_engine(config)
        try:
            ift, eft, held = _data(config)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"seed data: {exc}") from None
        pool = {p["instruction"] for p in ift}
        if len(pool) < config.shots:
            raise ConfigError(
                f"field 'ift': {len(pool)} distinct instructions left after holding out "
                f"{len(held)}, fewer than shots={config.shots}"
            )
        if not eft:
            raise ConfigError("field 'eft': no usable EFT rows (each must end in 'Score: N')")

    def run(self, ctx: JobContext) -> None:
        cfg: SelfRewardingConfig = ctx.config  # type: ignore[assignment]
        served = ServedModel(cfg.engine, cfg.swap)
        self.run_iterations(
            ctx,
            served,
            first=lambda it0: self._sft_m1(ctx, it0),
            step=lambda it, m_t: self._iteration(ctx, it, served, m_t),
        )

    # -- M1: SFT of the base model on IFT + EFT --

    def _sft_m1(self, ctx, it: Iteration) -> ResolvedModel:
        cfg: SelfRewardingConfig = ctx.config

        def sft_m1():
            ift, eft, held = _data(cfg, ctx.layout.rejects)
            rows = [S.chat_row(p["instruction"], p["output"], "ift") for p in ift]
            rows += [S.chat_row(e["instruction"], e["output"], "eft") for e in eft]
            res = train_model("sft", rows, ctx.model.spec, it.sub("m1"), sft_settings(cfg))
            return {
                "model": res.model_dir,
                "metrics": res.metrics,
                "ift": len(ift),
                "eft": len(eft),
                "heldout": len(held),
            }

        m1 = it.stage("sft_m1", sft_m1)
        return resolve_model(m1["model"])

    # -- every iteration --

    def _iteration(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> ResolvedModel:
        cfg: SelfRewardingConfig = ctx.config
        it.manifest["settings"]["judge"] = cfg.judge.model_dump(mode="json")
        it.manifest["settings"]["feedback"] = cfg.feedback
        ift, eft, held = _data(cfg)
        for name, src, n in (
            ("ift", cfg.ift or "shipped Self-Instruct seed instances", len(ift)),
            ("eft", cfg.eft or "built by rule from the IFT pairs", len(eft)),
            ("heldout", cfg.ift or "shipped Self-Instruct seed instances", len(held)),
        ):
            it.manifest["datasets"][name] = {"path": src, "rows": n, "role": "in"}
        ins = it.stage("instructions", lambda: self._instructions(ctx, it, served, m_t))
        resp = it.stage("responses", lambda: self._responses(ctx, it, served, m_t))
        jud = it.stage("judge", lambda: self._judge(cfg, it, served, m_t))
        sel = it.stage("select", lambda: self._select(ctx, it, m_t))
        trained = it.stage("train", lambda: self._train(cfg, it, served, m_t, sel))
        m_next = resolve_model(trained["model"])
        it.manifest["model_out"] = model_record(m_next)
        swap = it.stage("swap", lambda: {"probe": served.use(m_next, parent=m_t)})
        it.manifest["probe"] = swap["probe"]
        ev = (
            it.stage("evaluate", lambda: self._evaluate(ctx, it, served, m_t, m_next))
            if cfg.evaluation.enabled
            else {}
        )
        dpo = ((trained.get("metrics") or {}).get("dpo") or {}).get("last") or {}
        metrics = {
            "prompts_kept": ins["kept"],
            "candidates": resp["candidates"],
            "judge_parse_rate": jud["parse_rate"],
            "score_histogram": jud["histogram"],
            "pairs": sel["pairs"],
            "skipped_prompts": sel["rejected"],
            "train_rows": trained.get("rows"),
            "dpo_reward_margin": dpo.get("rewards/margins"),
            "dpo_reward_accuracy": dpo.get("rewards/accuracies"),
            "heldout_win_rate": ev.get("win_rate"),
            "heldout_mean_score": ev.get("mean_score_new"),
        }
        it.finish(metrics)
        return m_next

    def _instructions(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> dict[str, Any]:
        cfg: SelfRewardingConfig = ctx.config
        probe = served.ensure(m_t)
        ift, _, held = _data(cfg)
        pool = sorted({p["instruction"] for p in ift})
        requests = []
        for i in range(cfg.prompts):
            key = f"iter{it.t}-prompt{i}"
            shots = P.fewshot(pool, cfg.shots, key)
            msgs = [{"role": "user", "content": P.instruction_prompt(shots)}]
            sampling = stage_sampling(cfg.instruction_sampling, None, key)
            rid = request_id("instr", msgs, sampling, m_t.fingerprint)
            requests.append({"id": rid, "messages": msgs, "sampling": sampling})
        gens, stats = generate_rows(
            served.engine, requests, it.sub("data/instructions"), ctx.run_id, "messages"
        )
        by_id = {g["request_id"]: g for g in gens}
        seen = {P.normalise(s) for s in pool + held}
        kept, rejects = [], []
        for r in requests:
            g = by_id.get(r["id"])
            text = P.parse_instruction((g or {}).get("completion") or "")
            why = None
            if g is None or g["error"]:
                why = ("generation_failed", (g or {}).get("error") or "no generation row")
            elif not text:
                why = ("empty_instruction", "M_t wrote nothing")
            elif g["finish_reason"] == "length" and not cfg.keep_truncated:
                why = ("instruction_truncated", text)
            elif P.normalise(text) in seen:
                why = ("instruction_duplicate", text)
            if why:
                rejects.append(
                    reject("instructions", why[0], stage="instructions", id=r["id"], detail=why[1])
                )
                continue
            seen.add(P.normalise(text))
            kept.append({"id": r["id"], "instruction": text, "model": m_t.fingerprint})
        write_rejects(it.sub("rejects"), rejects, "instructions")
        path = it.sub("prompts")
        write_table_dir(path, pa.Table.from_pylist(kept) if kept else pa.table({"id": []}))
        return {
            "datasets": {"prompts": dataset_record(path)},
            "probe": probe,
            "requested": len(requests),
            "generated": stats.generated,
            "skipped_done": stats.skipped_done,
            "kept": len(kept),
            "rejected": dict(Counter(r["reason"] for r in rejects)),
        }

    def _responses(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> dict[str, Any]:
        """``candidates`` answers per new prompt, and M_t's greedy answers to the held-out
        instructions (the evaluate stage compares M_{t+1}'s with them)."""
        cfg: SelfRewardingConfig = ctx.config
        probe = served.ensure(m_t)
        table = read_parquet_dir(it.sub("prompts"))
        prompts = table.to_pylist() if table is not None and table.num_rows else []
        requests = []
        for p in prompts:
            msgs = [{"role": "user", "content": p["instruction"]}]
            base = cfg.response_sampling.model_copy(update={"n": cfg.candidates})
            sampling = stage_sampling(base, None, p["id"])
            requests.append(
                {
                    "id": request_id("resp", msgs, sampling, m_t.fingerprint),
                    "messages": msgs,
                    "sampling": sampling,
                }
            )
        held = _data(cfg)[2] if cfg.evaluation.enabled else []
        requests += _heldout_requests(cfg, held, m_t)
        gens, stats = generate_rows(
            served.engine, requests, it.sub("data/responses"), ctx.run_id, "messages"
        )
        by_req: dict[str, list] = {}
        for g in gens:
            by_req.setdefault(g["request_id"], []).append(g)
        cands, failed = [], []
        for p, r in zip(prompts, requests):
            for g in by_req.get(r["id"], []):
                if g["error"]:
                    failed.append(
                        reject(
                            "responses",
                            "generation_failed",
                            stage="responses",
                            id=g["id"],
                            detail=g["error"],
                        )
                    )
                    continue
                cands.append(
                    {
                        "id": g["id"],
                        "prompt_id": p["id"],
                        "instruction": p["instruction"],
                        "output": g["completion"] or "",
                        "sample_index": int(g["sample_index"]),
                    }
                )
        write_rejects(it.sub("rejects"), failed, "responses")
        path = it.sub("candidates")
        write_table_dir(path, pa.Table.from_pylist(cands) if cands else pa.table({"id": []}))
        return {
            "datasets": {"candidates": dataset_record(path)},
            "probe": probe,
            "prompts": len(prompts),
            "candidates": len(cands),
            "failed": len(failed),
            "generated": stats.generated,
            "skipped_done": stats.skipped_done,
        }

    def _judge(self, cfg, it: Iteration, served, m_t: ResolvedModel) -> dict[str, Any]:
        probe = served.ensure(m_t)
        table = read_parquet_dir(it.sub("candidates"))
        cands = table.to_pylist() if table is not None and table.num_rows else []
        judge = cfg.judge.model_copy(update={"threshold": None})
        kept, counts = (
            judge_rows(cands, judge, served.engine, it.sub("judge"), it.sub("rejects"))
            if cands
            else ([], {"parse_rate": None, "samples": 0, "parsed": 0, "unscored": 0})
        )
        by_id = {r["id"]: r["extra"]["judge"] for r in kept}
        for c in cands:
            j = by_id.get(c["id"]) or {}
            c["score"], c["judge_samples"] = j.get("score"), j.get("samples") or []
        path = it.sub("judged")
        write_table_dir(path, pa.Table.from_pylist(cands) if cands else pa.table({"id": []}))
        return {
            "datasets": {"judged": dataset_record(path)},
            "probe": probe,
            "judge_model": m_t.fingerprint,
            "candidates": len(cands),
            "scored": len(kept),
            "unscored": counts.get("unscored", 0),
            "samples": counts.get("samples", 0),
            "parsed": counts.get("parsed", 0),
            "parse_rate": counts.get("parse_rate"),
            "histogram": P.histogram([c["score"] for c in cands if c["score"] is not None]),
        }

    def _select(self, ctx, it: Iteration, m_t: ResolvedModel) -> dict[str, Any]:
        cfg: SelfRewardingConfig = ctx.config
        table = read_parquet_dir(it.sub("judged"))
        cands = table.to_pylist() if table is not None and table.num_rows else []
        prompts = read_parquet_dir(it.sub("prompts"))
        prompt_ids = [r["id"] for r in (prompts.to_pylist() if prompts is not None else [])]
        groups = P.group_by_prompt(cands)
        prefs, rejects = [], []
        for pid in sorted(prompt_ids):
            pair, why, detail = P.select_pair(groups.get(pid, []))
            if pair is None:
                rejects.append(reject("select", why, stage="select", id=pid, detail=detail))
                continue
            c, r = pair["chosen"], pair["rejected"]
            if not (c["output"].strip() and r["output"].strip()):
                rejects.append(
                    reject(
                        "select",
                        "empty_response",
                        stage="select",
                        id=pid,
                        detail="the chosen or the rejected candidate is empty",
                    )
                )
                continue
            prefs.append(
                {
                    "prompt": c["instruction"],
                    "chosen": c["output"],
                    "rejected": r["output"],
                    "score_chosen": c["score"],
                    "score_rejected": r["score"],
                    "model_chosen": m_t.fingerprint,
                    "model_rejected": m_t.fingerprint,
                    "method": METHOD,
                    "iteration": it.t,
                    "run_id": ctx.run_id,
                    "extra": {
                        "prompt_id": pid,
                        "candidate_chosen": c["id"],
                        "candidate_rejected": r["id"],
                        "judge_samples_chosen": c["judge_samples"],
                        "judge_samples_rejected": r["judge_samples"],
                    },
                }
            )
        write_rejects(it.sub("rejects"), rejects, "select")
        path = it.sub("preferences")
        write_preferences(path, prefs)
        pos = P.positives(cands, cfg.positive_score)
        positive_rows = [
            S.chat_row(c["instruction"], c["output"], "positive")
            for c in sorted(pos, key=lambda c: c["id"])
            if c["output"].strip()
        ]
        pos_path = it.sub("positives")
        write_table_dir(
            pos_path,
            pa.Table.from_pylist(positive_rows) if positive_rows else pa.table({"origin": []}),
        )
        return {
            "datasets": {
                "preferences": dataset_record(path),
                "positives": dataset_record(pos_path),
            },
            "prompts": len(prompt_ids),
            "pairs": len(prefs),
            "positives": len(positive_rows),
            "rejected": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        }

    def _train(self, cfg, it: Iteration, served, m_t: ResolvedModel, sel: dict) -> dict[str, Any]:
        """DPO of M_t on the pairs with M_t as the reference (or, feedback: positive, SFT of M_t
        on the score-5 candidates). No data: M_{t+1} = M_t, said in the result."""
        if cfg.feedback == "pairs":
            kind, data, n = "dpo", it.sub("preferences"), sel["pairs"]
            settings = dpo_settings(cfg, m_t.source)
            it.manifest["settings"]["dpo_reference"] = model_record(m_t)
        else:
            kind, data, n = "sft", it.sub("positives"), sel["positives"]
            settings = sft_settings(cfg)
        if n == 0:
            return {"model": m_t.source, "kind": kind, "rows": 0, "skipped": "no training rows"}
        served.before_training(settings.get("scaling") or {})
        res = train_model(kind, data, m_t.source, it.sub("m_next"), settings)
        out = {"model": res.model_dir, "kind": kind, "rows": n, "metrics": res.metrics}
        out.update(reused=res.reused, base=model_record(m_t))
        if kind == "dpo":
            out["reference"] = model_record(m_t)
        return out

    def _evaluate(self, ctx, it: Iteration, served, m_t, m_next) -> dict[str, Any]:
        """M_{t+1}'s greedy answers to the held-out instructions against M_t's (from the
        responses stage), both judged by the evaluation judge in one call."""
        cfg: SelfRewardingConfig = ctx.config
        held = _data(cfg)[2]
        if not held:
            return {"win_rate": None, "compared": 0}
        served.ensure(m_next)
        old_reqs, new_reqs = _heldout_requests(cfg, held, m_t), _heldout_requests(cfg, held, m_next)
        gens, _ = generate_rows(
            served.engine, new_reqs, it.sub("data/heldout"), ctx.run_id, "messages"
        )
        old_gens = read_generations(it.sub("data/responses"), {r["id"] for r in old_reqs})
        rows = []
        for tag, reqs, gs in (("new", new_reqs, gens), ("old", old_reqs, old_gens)):
            by = {g["request_id"]: g for g in gs}
            for h, r in zip(held, reqs):
                g = by.get(r["id"])
                if g is not None and not g["error"]:
                    rows.append(
                        {
                            "id": f"{tag}-{r['id']}",
                            "instruction": h,
                            "output": g["completion"] or "",
                            "held": h,
                            "tag": tag,
                        }
                    )
        judge = cfg.evaluation.judge.model_copy(update={"threshold": None})
        kept, counts = judge_rows(
            rows, judge, served.engine, it.sub("eval_judge"), it.sub("eval_rejects")
        )
        score = {r["id"]: r["extra"]["judge"]["score"] for r in kept}
        new = {r["held"]: score.get(r["id"]) for r in rows if r["tag"] == "new"}
        old = {r["held"]: score.get(r["id"]) for r in rows if r["tag"] == "old"}
        judge_model = served.model.fingerprint if not judge.url else judge.url
        return {
            **P.win_rate(new, old),
            "heldout": len(held),
            "judge": judge_model,
            "judge_parse_rate": counts.get("parse_rate"),
        }


def _heldout_requests(cfg: SelfRewardingConfig, held: list[str], model: ResolvedModel):
    sampling = cfg.evaluation.sampling.to_json()
    out = []
    for h in held:
        msgs = [{"role": "user", "content": h}]
        out.append(
            {
                "id": request_id("held", msgs, sampling, model.fingerprint),
                "messages": msgs,
                "sampling": sampling,
            }
        )
    return out


def summarize(output_dir: str) -> list[dict[str, Any]]:
    """Per iteration metrics from the manifests (for reports and benchmarks)."""
    from synth_ray.loops.base import read_manifests

    return [
        dict(m.get("metrics") or {}, iteration=m["iteration"]) for m in read_manifests(output_dir)
    ]
