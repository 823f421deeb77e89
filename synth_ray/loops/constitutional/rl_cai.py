"""The RL-CAI labelling loop: stages and job (see ``synth_ray.loops.constitutional``)."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from typing import Any

import pyarrow as pa

from synth_ray.config import ConfigError
from synth_ray.io.ids import stable_hash
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
from synth_ray.loops.constitutional import constitution as C
from synth_ray.loops.constitutional.config import ConstitutionalRLConfig
from synth_ray.loops.swap import ServedModel
from synth_ray.models.resolve import ResolvedModel, resolve_model
from synth_ray.stages import rubrics
from synth_ray.stages.generate import generate_rows
from synth_ray.stages.records import request_id, stage_sampling, write_preferences, write_table_dir
from synth_ray.train.api import train_model

log = logging.getLogger(__name__)

METHOD = "constitutional_rl"
LABEL_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("response_0", pa.string()),
        ("response_1", pa.string()),
        ("p_0", pa.float64()),  # the feedback model's probability that response_0 is better
        ("judgements", pa.string()),  # JSON: principle, order, logprob_a, logprob_b, p_a
        ("source", pa.string()),  # sampled | given (response_0 = the given row's chosen)
    ]
)


def _plain(value: Any) -> str:
    """A preference row's side as text (the training reader gives conversations: the last
    message's content)."""
    if isinstance(value, list):
        return str(value[-1]["content"]) if value else ""
    return str(value)


def principles_for(constitution, key: str, k: int, seed: int) -> list[C.Principle]:
    """``k`` distinct principles for one pair (all when k >= their count), seeded by the pair."""
    rng = random.Random(stable_hash(seed, key, "rl", length=16))
    return rng.sample(constitution, min(k, len(constitution)))


def questions(prompt: str, r0: str, r1: str, principles, both_orders: bool) -> list[dict]:
    """The feedback prompts of one pair: per principle, the responses as (A) = r0, (B) = r1,
    and with ``both_orders`` also swapped."""
    out = []
    for p in principles:
        for order in ("01", "10") if both_orders else ("01",):
            a, b = (r0, r1) if order == "01" else (r1, r0)
            out.append(
                {
                    "principle": p.name,
                    "order": order,
                    "text": rubrics.compare_prompt(p.choice, prompt, a, b),
                }
            )
    return out


def soft_label(judgements: list[dict]) -> float:
    """P(response_0 is better): each judgement's normalised P(A) (order 01) or P(B) (order
    10), averaged."""
    ps = [j["p_a"] if j["order"] == "01" else 1.0 - j["p_a"] for j in judgements]
    return sum(ps) / len(ps)


def position_consistency(judgements: list[dict]) -> float | None:
    """Share of principles whose two orders pick the same response (None: one order only)."""
    by: dict[str, dict[str, float]] = {}
    for j in judgements:
        by.setdefault(j["principle"], {})[j["order"]] = j["p_a"]
    both = [v for v in by.values() if len(v) == 2]
    if not both:
        return None
    return sum((v["01"] >= 0.5) == (v["10"] < 0.5) for v in both) / len(both)


def label_figures(rows: list[dict]) -> dict[str, Any]:
    """Mean confidence |p - 0.5|, agreement with the given order (given pairs), and position
    consistency (both orders)."""
    if not rows:
        return {"labelled": 0}
    out: dict[str, Any] = {
        "labelled": len(rows),
        "mean_confidence": round(sum(abs(r["p_0"] - 0.5) for r in rows) / len(rows), 4),
    }
    given = [r for r in rows if r["source"] == "given"]
    if given:
        out["agreement_with_given_order"] = round(
            sum(r["p_0"] > 0.5 for r in given) / len(given), 4
        )
    cons = [position_consistency(json.loads(r["judgements"])) for r in rows]
    cons = [c for c in cons if c is not None]
    if cons:
        out["position_consistency"] = round(sum(cons) / len(cons), 4)
    return out


def preference_row(label: dict, policy: str, t: int, run_id: str) -> dict[str, Any]:
    """chosen = the response the feedback model prefers; the soft label as its score."""
    p0 = label["p_0"]
    first = p0 >= 0.5
    return {
        "prompt": label["prompt"],
        "chosen": label["response_0"] if first else label["response_1"],
        "rejected": label["response_1"] if first else label["response_0"],
        "score_chosen": p0 if first else 1.0 - p0,
        "score_rejected": 1.0 - p0 if first else p0,
        "model_chosen": policy,
        "model_rejected": policy,
        "method": METHOD,
        "iteration": t,
        "run_id": run_id,
        "extra": {"label_id": label["id"], "source": label["source"]},
    }


@JOBS.register(METHOD)
class ConstitutionalRL(IterativeJob):
    """RL-CAI: pairs from the policy, (A)/(B) soft labels from a feedback model, DPO on them."""

    config_cls = ConstitutionalRLConfig

    def preflight(self, config: ConstitutionalRLConfig) -> None:  # type: ignore[override]
        check_loop_engine(config)
        for field in ("constitution", "red_team", "pairs"):
            try:
                if field == "constitution":
                    C.load_constitution(config.constitution)
                elif field == "red_team" and config.pairs is None:
                    C.load_prompts(config.red_team)
                elif field == "pairs" and config.pairs is not None and not self._given(config):
                    raise ValueError("no usable preference rows")
            except (OSError, ValueError) as exc:
                raise ConfigError(f"field '{field}': {exc}") from None

    @staticmethod
    def _given(cfg: ConstitutionalRLConfig, rejects_dir: str | None = None) -> list[dict]:
        from synth_ray.train.data import read_training_rows_local

        rows, bad = read_training_rows_local(cfg.pairs, "pairwise")
        if rejects_dir:
            write_rejects(rejects_dir, bad, "pairs")
        rows = [{k: _plain(r[k]) for k in ("prompt", "chosen", "rejected")} for r in rows]
        return rows[: cfg.max_prompts] if cfg.max_prompts else rows

    def run(self, ctx: JobContext) -> None:
        cfg: ConstitutionalRLConfig = ctx.config  # type: ignore[assignment]
        served = ServedModel(cfg.engine, cfg.swap)
        feedback = resolve_model(cfg.feedback_model) if cfg.feedback_model else None
        self.run_iterations(
            ctx,
            served,
            first=lambda it0: ctx.model,
            step=lambda it, m_t: self._iteration(ctx, it, served, m_t, feedback or m_t),
        )

    def _iteration(self, ctx, it: Iteration, served, m_t, feedback) -> ResolvedModel:
        cfg: ConstitutionalRLConfig = ctx.config
        it.manifest["settings"]["feedback_model"] = model_record(feedback)
        resp = it.stage("respond", lambda: self._respond(ctx, it, served, m_t))
        lab = it.stage("label", lambda: self._label(ctx, it, served, m_t, feedback))
        pairs = it.stage("pairs", lambda: self._pairs(ctx, it, m_t))
        m_next = m_t
        if cfg.train == "reward":
            pm = it.stage("train", lambda: self._train_reward(it, served, m_t, cfg))
            it.manifest["settings"]["preference_model"] = pm.get("model")
        if cfg.train == "dpo":
            trained = it.stage("train", lambda: self._train(it, served, m_t, cfg))
            m_next = resolve_model(trained["model"])
            it.manifest["model_out"] = model_record(m_next)
            swap = it.stage("swap", lambda: {"probe": served.use(m_next, parent=m_t)})
            it.manifest["probe"] = swap["probe"]
        it.finish(
            {
                "pairs_in": resp["pairs"],
                **{k: v for k, v in lab.items() if k not in ("datasets", "probe")},
                "preference_pairs": pairs["pairs"],
                "rejected": dict(
                    sorted((Counter(pairs["rejected"]) + Counter(resp["rejected"])).items())
                ),
            }
        )
        return m_next

    def _requests(self, cfg: ConstitutionalRLConfig, m_t: ResolvedModel) -> list[dict]:
        sampling = cfg.response_sampling.model_copy(update={"n": 2})
        prompts = C.load_prompts(cfg.red_team)
        prompts = prompts[: cfg.max_prompts] if cfg.max_prompts else prompts
        out = []
        for x in prompts:
            msgs = [{"role": "user", "content": x}]
            s = stage_sampling(sampling, None, x)
            out.append(
                {
                    "id": request_id("pair", msgs, s, m_t.fingerprint),
                    "messages": msgs,
                    "sampling": s,
                    "prompt_text": x,
                }
            )
        return out

    def _respond(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> dict[str, Any]:
        """The pairs to label: two samples of the policy per red-team prompt, or the given
        preference rows (chosen first)."""
        cfg: ConstitutionalRLConfig = ctx.config
        rejects = []
        if cfg.pairs is not None:
            given = self._given(cfg, ctx.layout.rejects if it.t == 0 else None)
            pairs = [
                {
                    "id": f"given-{stable_hash(r['prompt'], r['chosen'], r['rejected'], length=16)}",
                    "prompt": r["prompt"],
                    "response_0": r["chosen"],
                    "response_1": r["rejected"],
                    "source": "given",
                }
                for r in given
            ]
        else:
            served.ensure(m_t)
            reqs = self._requests(cfg, m_t)
            rows = [{k: v for k, v in r.items() if k != "prompt_text"} for r in reqs]
            gens, _ = generate_rows(
                served.engine, rows, it.sub("data/respond"), ctx.run_id, "messages"
            )
            by = {(g["request_id"], g["sample_index"]): g for g in gens}
            pairs = []
            for r in reqs:
                texts = [
                    ((by.get((r["id"], k)) or {}).get("completion") or "").strip() for k in (0, 1)
                ]
                errs = [(by.get((r["id"], k)) or {}).get("error") for k in (0, 1)]
                why = (
                    "no_response"
                    if any(errs) or not all(texts)
                    else "identical_responses"
                    if texts[0] == texts[1]
                    else None
                )
                if why:
                    rejects.append(
                        reject(
                            "respond",
                            why,
                            stage="respond",
                            id=r["id"],
                            detail=str([e for e in errs if e])[:500],
                        )
                    )
                    continue
                pairs.append(
                    {
                        "id": r["id"],
                        "prompt": r["prompt_text"],
                        "response_0": texts[0],
                        "response_1": texts[1],
                        "source": "sampled",
                    }
                )
        table = pa.Table.from_pylist(
            [{**p, "p_0": None, "judgements": None} for p in pairs], schema=LABEL_SCHEMA
        )
        write_table_dir(it.sub("pairs_in"), table)
        write_rejects(it.sub("rejects"), rejects, "respond")
        return {"pairs": len(pairs), "rejected": dict(Counter(r["reason"] for r in rejects))}

    def _label(self, ctx, it: Iteration, served, m_t, feedback) -> dict[str, Any]:
        """Every pair's soft label from the feedback model's log-probabilities of " (A)" and
        " (B)" after the multiple-choice prompt, under sampled principles (and both orders)."""
        cfg: ConstitutionalRLConfig = ctx.config
        table = read_parquet_dir(it.sub("pairs_in"))
        pairs = table.to_pylist() if table is not None else []
        cons = C.load_constitution(cfg.constitution)
        qs = []
        for p in pairs:
            ps = principles_for(cons, p["id"], cfg.principles_per_pair, cfg.seed)
            qs.append(questions(p["prompt"], p["response_0"], p["response_1"], ps, cfg.both_orders))
        probe = served.ensure(feedback)
        flat = [(q["text"], list(rubrics.OPTIONS)) for group in qs for q in group]
        logprobs = served.engine.option_logprobs(flat) if flat else []
        out, k = [], 0
        for p, group in zip(pairs, qs):
            js = []
            for q in group:
                la, lb = logprobs[k]
                k += 1
                pa_, _ = rubrics.option_probabilities(la, lb)
                js.append(
                    {
                        "principle": q["principle"],
                        "order": q["order"],
                        "logprob_a": la,
                        "logprob_b": lb,
                        "p_a": pa_,
                    }
                )
            out.append({**p, "p_0": soft_label(js), "judgements": json.dumps(js)})
        write_table_dir(it.sub("labels"), pa.Table.from_pylist(out, schema=LABEL_SCHEMA))
        return {
            "datasets": {"labels": dataset_record(it.sub("labels"))},
            "probe": probe,
            "questions": len(flat),
            **label_figures(out),
        }

    def _pairs(self, ctx, it: Iteration, m_t: ResolvedModel) -> dict[str, Any]:
        table = read_parquet_dir(it.sub("labels"))
        labels = table.to_pylist() if table is not None else []
        prefs, rejects = [], []
        for lab in labels:
            if lab["p_0"] == 0.5:
                rejects.append(
                    reject("label", "tie", stage="pairs", id=lab["id"], detail="P(A) = P(B) = 0.5")
                )
                continue
            prefs.append(preference_row(lab, m_t.fingerprint, it.t, ctx.run_id))
        write_preferences(it.sub("preferences"), prefs)
        write_rejects(it.sub("rejects"), rejects, "pairs")
        return {
            "datasets": {"preferences": dataset_record(it.sub("preferences"))},
            "pairs": len(prefs),
            "rejected": dict(Counter(r["reason"] for r in rejects)),
        }

    @staticmethod
    def _train_reward(it: Iteration, served, m_t: ResolvedModel, cfg) -> dict[str, Any]:
        """The paper's preference model: a reward model from the policy's weights on the soft
        labels (``score_chosen``), Bradley-Terry cross-entropy (``loss: soft_pairwise``)."""
        settings = {**cfg.reward, "loss": "soft_pairwise"}
        res = _train_on_preferences(it, served, "reward", m_t, "preference_model", settings)
        return {**res, "model": None} if res.get("skipped") else res

    @staticmethod
    def _train(it: Iteration, served, m_t: ResolvedModel, cfg) -> dict[str, Any]:
        """DPO of the policy on the labelled pairs, the policy as the reference -> M_{t+1}."""
        settings = {**cfg.dpo, "ref_model": m_t.source}
        res = _train_on_preferences(it, served, "dpo", m_t, "m_next", settings)
        return {**res, "reference": model_record(m_t)}


def _train_on_preferences(it, served, kind: str, base, out: str, settings) -> dict[str, Any]:
    """Train ``kind`` from ``base`` on this iteration's preference rows into ``it/out``; with
    no rows, nothing is trained and the base model is the result (said so)."""
    table = read_parquet_dir(it.sub("preferences"))
    rows = table.to_pylist() if table is not None else []
    if not rows:
        return {"model": base.source, "rows": 0, "skipped": "no labelled pairs"}
    served.before_training(settings.get("scaling") or {})
    res = train_model(kind, rows, base.source, it.sub(out), settings)
    return {"model": res.model_dir, "rows": len(rows), "metrics": res.metrics, "reused": res.reused}
