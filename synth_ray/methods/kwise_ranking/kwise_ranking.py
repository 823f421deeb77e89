"""The k-wise ranking job (see the package docstring for the method and its defaults)."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import pyarrow as pa

from synth_ray.config import ConfigError
from synth_ray.engines import build_engine
from synth_ray.io.ids import stable_hash
from synth_ray.io.rejects import reject, write_rejects
from synth_ray.job import JOBS, Job, JobContext
from synth_ray.methods.kwise_ranking import ranking as R
from synth_ray.methods.kwise_ranking.config import KwiseRankingConfig, RankingJudgeConfig
from synth_ray.methods.kwise_ranking.prompts import judge_messages, load_prompts
from synth_ray.stages.generate import generate_rows
from synth_ray.stages.judge import resolve_output
from synth_ray.stages.records import (
    error_reason,
    preference_id,
    request_id,
    stage_sampling,
    write_preferences,
    write_table_dir,
)
from synth_ray.stages.rounds import GenerationCounters

RANKING_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        (
            "responses",
            pa.list_(pa.string()),
        ),  # best first: what `method: reward, loss: kwise` reads
        ("models", pa.list_(pa.string())),  # the responder of each response, same order
        ("mean_ranks", pa.list_(pa.float64())),  # 1 = best, averaged over parsed judgements
        ("method", pa.string()),
        ("run_id", pa.string()),
        ("extra", pa.string()),  # JSON: judgements (shown order, answer, ranks), ties, scores
    ]
)


def _resolve(spec: str, engine_type: str):
    from synth_ray.models import ModelNotFoundError, resolve_model
    from synth_ray.models.resolve import ResolvedModel

    if engine_type == "openai":
        return ResolvedModel(spec, spec, "served")
    try:
        return resolve_model(spec)
    except ModelNotFoundError as exc:
        raise ConfigError(f"responder model: {exc}") from None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]


class _Engines:
    """One engine per (engine config, model) pair; the job's own is ``ctx.engine``."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.built: dict[str, Any] = {}
        self.job_key = self.key(ctx.config.engine, ctx.model.fingerprint)

    @staticmethod
    def key(engine_cfg, fingerprint: str) -> str:
        return stable_hash(engine_cfg.model_dump_json(), fingerprint)

    def get(self, engine_cfg, model):
        k = self.key(engine_cfg, model.fingerprint)
        if k == self.job_key:
            return self.ctx.engine
        if k not in self.built:
            eng = build_engine(engine_cfg, model)
            eng.use_lifetime("run")
            eng.preflight()
            self.built[k] = eng
        return self.built[k]

    def close_all(self) -> None:
        for eng in self.built.values():
            eng.close()
            self.ctx.record.engine_starts += eng.starts
        self.built.clear()


@JOBS.register("kwise_ranking")
class KwiseRanking(Job):
    """Starling-style k-wise rankings: K responses from several models, ranked by a judge."""

    config_cls = KwiseRankingConfig
    engine_lifetime = "run"

    def preflight(self, config: KwiseRankingConfig) -> None:
        load_prompts(config.prompts, config.max_prompts)
        for r in config.responders or []:
            if r.model is not None:
                _resolve(r.model, (r.engine or config.engine).type)

    def run(self, ctx: JobContext) -> None:
        cfg: KwiseRankingConfig = ctx.config  # type: ignore[assignment]
        rec = ctx.record
        counters = GenerationCounters(rec)
        prompts = load_prompts(cfg.prompts, cfg.max_prompts)
        rec.counts["prompts"] = len(prompts)
        engines = _Engines(ctx)
        try:
            responses = self._respond(ctx, cfg, prompts, engines, counters)
        finally:
            engines.close_all()
        rejects: list[dict] = []
        items = []
        for p in prompts:
            got = responses[p["id"]]
            usable = [r for r in got if not r["error"] and r["text"].strip()]
            if len(usable) < cfg.min_responses:
                why = Counter("error" if r["error"] else "empty" for r in got if r not in usable)
                rejects.append(
                    reject(
                        "kwise_ranking",
                        "too_few_responses",
                        stage="respond",
                        id=p["id"],
                        detail=f"{len(usable)} usable of {len(got)} (< {cfg.min_responses}): "
                        + json.dumps(dict(why)),
                    )
                )
                continue
            items.append({**p, "responses": usable})
        rec.counts["responses"] = {
            "requested": len(prompts) * cfg.k,
            "usable": sum(len(i["responses"]) for i in items),
        }
        with rec.stage("judge"):
            if cfg.judge.type == "llm":
                ranked, judge_rejects, judge_counts = self._judge_llm(ctx, cfg, items, counters)
            else:
                ranked, judge_rejects, judge_counts = _judge_service(cfg.judge, items)
        rejects += judge_rejects
        rec.counts["judge"] = judge_counts
        rows, prefs, pair_counts = _outputs(cfg, ctx, ranked)
        with rec.stage("write"):
            write_table_dir(ctx.layout.sub("rankings"), pa.Table.from_pylist(rows, RANKING_SCHEMA))
            write_preferences(ctx.layout.sub("preferences"), prefs)
        write_rejects(ctx.layout.rejects, rejects, "kwise_ranking")
        rec.counts["rankings"] = len(rows)
        rec.counts["pairs"] = pair_counts
        rec.extra["responders"] = [
            {"name": n, "model": r.model or cfg.model, "samples": r.samples}
            for n, r in zip(cfg.responder_names(), cfg.responders or [])
        ]

    # -- responses ----------------------------------------------------------------------------

    def _respond(self, ctx, cfg, prompts, engines, counters) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {p["id"]: [] for p in prompts}
        for name, r in zip(cfg.responder_names(), cfg.responders or []):
            engine_cfg = r.engine or cfg.engine
            model = ctx.model if r.model is None else _resolve(r.model, engine_cfg.type)
            engine = engines.get(engine_cfg, model)
            base = r.sampling.model_copy(update={"n": r.samples})
            reqs, by_id = [], {}
            for p in prompts:
                messages = [{"role": "user", "content": p["prompt"]}]
                sampling = stage_sampling(base, None, key=p["id"])
                rid = request_id(f"respond-{_safe(name)}", messages, sampling, model.fingerprint)
                reqs.append({"id": rid, "messages": messages, "sampling": sampling})
                by_id[rid] = p["id"]
            stage = f"respond/{_safe(name)}"
            with ctx.record.stage("generate"):
                gens, stats = generate_rows(
                    engine, reqs, ctx.layout.sub(f"data/{stage}"), ctx.run_id, "messages"
                )
            counters.add(stage, stats)
            for g in sorted(gens, key=lambda g: (g["request_id"], g["sample_index"])):
                out[by_id[g["request_id"]]].append(
                    {
                        "text": g["completion"] or "",
                        "model": name,
                        "error": error_reason(g["error"]) if g["error"] else None,
                        "generation_id": g["id"],
                    }
                )
        return out

    # -- the LLM judge --------------------------------------------------------------------------

    def _judge_llm(self, ctx, cfg, items, counters):
        j: RankingJudgeConfig = cfg.judge
        output = resolve_output(j.output, ctx.engine)
        reason_chars = j.max_reason_chars if j.reasoning else None
        if reason_chars is not None:
            reason_chars = max(1, min(reason_chars, j.max_tokens - 4 * cfg.k - 12))
        reqs, meta = [], {}
        for it in items:
            k = len(it["responses"])
            constraint: dict[str, Any] = {}
            if output == "regex":
                constraint = {"regex": R.ranking_regex(k, reason_chars, j.exact_permutation_max_k)}
            elif output == "json":
                constraint = {"json_schema": R.ranking_schema(k, reason_chars), "stop": []}
            for n in range(j.judgements):
                perm = R.shuffle(k, j.seed, it["id"], n)
                messages = judge_messages(
                    j, it["prompt"], [it["responses"][i]["text"] for i in perm]
                )
                sampling = json.dumps(
                    {
                        "temperature": j.temperature,
                        "top_p": j.top_p,
                        "max_tokens": j.max_tokens,
                        "seed": (j.seed + int(stable_hash(it["id"], n, length=8), 16)) % 2**31,
                        **constraint,
                    },
                    sort_keys=True,
                )
                rid = request_id("rank", messages, sampling, ctx.model.fingerprint)
                reqs.append({"id": rid, "messages": messages, "sampling": sampling})
                meta[rid] = (it["id"], n, perm)
        with ctx.record.stage("generate"):
            gens, stats = generate_rows(
                ctx.engine, reqs, ctx.layout.sub("data/judge"), ctx.run_id, "messages"
            )
        counters.add("judge", stats)
        by_item: dict[str, list[dict]] = {}
        reasons: Counter[str] = Counter()
        rejects = []
        for g in gens:
            item_id, n, perm = meta[g["request_id"]]
            if g["error"]:
                parsed = R.Parsed(None, "judge_error", g["error"][:300])
            else:
                parsed = R.parse_ranking(g["completion"], len(perm), output)
            entry = {"judgement": n, "shown": perm, "text": g["completion"] or ""}
            if parsed.order is None:
                reasons[parsed.reason] += 1
                rejects.append(
                    reject(
                        "kwise_ranking",
                        f"ranking_{parsed.reason}",
                        stage="judge",
                        id=g["id"],
                        detail=f"{parsed.detail} | {entry['text'][-200:]}",
                    )
                )
            else:
                entry["order"] = [R.LABELS[p] for p in parsed.order]
                entry["ranks"] = R.ranks_from_order(parsed.order, perm)
            by_item.setdefault(item_id, []).append(entry)
        ranked = []
        for it in items:
            js = sorted(by_item.get(it["id"], []), key=lambda e: e["judgement"])
            ok = [e["ranks"] for e in js if "ranks" in e]
            if not ok:
                rejects.append(
                    reject(
                        "kwise_ranking",
                        "no_parsed_judgement",
                        stage="judge",
                        id=it["id"],
                        detail=f"0 of {len(js)} judgements parsed into a permutation",
                    )
                )
                continue
            ranked.append({**it, "means": R.mean_ranks(ok), "judgements": js, "scores": None})
        total = len(gens)
        parsed_n = total - sum(reasons.values())
        counts = {
            "type": "llm",
            "model": ctx.model.name,
            "output": output,
            "judgements_per_prompt": j.judgements,
            "judgements": total,
            "parsed": parsed_n,
            "parse_rate": round(parsed_n / total, 4) if total else None,
            "unparsed_by_reason": dict(sorted(reasons.items())),
            "prompts_ranked": len(ranked),
            "prompts_unranked": len(items) - len(ranked),
        }
        return ranked, rejects, counts


def _judge_service(j: RankingJudgeConfig, items: list[dict]):
    """Score every response with the scoring service's reward model; rank by score."""
    from synth_ray.stages.judge import JudgeStageConfig, score_via_service

    sc = JudgeStageConfig(
        scorer="reward",
        url=j.url,
        token_env=j.token_env,
        prompt_field="prompt",
        input_field=None,
        response_field="response",
        batch_size=j.batch_size,
        retries=j.retries,
        timeout_s=j.timeout_s,
    )
    flat = [(it, i) for it in items for i in range(len(it["responses"]))]
    table = pa.Table.from_pylist(
        [{"prompt": it["prompt"], "response": it["responses"][i]["text"]} for it, i in flat]
    )
    token = os.environ.get(j.token_env) or None
    scored = []
    for start in range(0, table.num_rows, j.batch_size):
        part = score_via_service(table.slice(start, j.batch_size), sc.model_dump(), token)
        scored.extend(part.select(["judge_score", "judge_reason", "judge_model"]).to_pylist())
    scores: dict[str, list] = {it["id"]: [None] * len(it["responses"]) for it in items}
    why: dict[str, str] = {}
    model = None
    for (it, i), s in zip(flat, scored):
        scores[it["id"]][i] = s["judge_score"]
        model = model or s["judge_model"]
        if s["judge_score"] is None:
            why[it["id"]] = str(s["judge_reason"] or "")
    ranked, rejects = [], []
    for it in items:
        sc_ = scores[it["id"]]
        if any(s is None for s in sc_):
            rejects.append(
                reject(
                    "kwise_ranking",
                    "reward_unscored",
                    stage="judge",
                    id=it["id"],
                    detail=why[it["id"]][:300],
                )
            )
            continue
        means = R.ranks_from_scores(sc_)
        ranked.append({**it, "means": means, "judgements": [{"scores": sc_}], "scores": sc_})
    n = len(flat)
    counts = {
        "type": "reward_service",
        "model": model,
        "url": j.url,
        "judgements": n,
        "parsed": n - sum(s["judge_score"] is None for s in scored),
        "parse_rate": round((n - sum(s["judge_score"] is None for s in scored)) / n, 4)
        if n
        else None,
        "prompts_ranked": len(ranked),
        "prompts_unranked": len(items) - len(ranked),
    }
    return ranked, rejects, counts


def _outputs(cfg: KwiseRankingConfig, ctx: JobContext, ranked: list[dict]):
    """Ranking rows (best first) and the pairwise rows derived from them."""
    rows, prefs = [], []
    pair_counts = {"rows": 0, "skipped_tie": 0, "skipped_identical_responses": 0, "tied_prompts": 0}
    for it in ranked:
        resp, means = it["responses"], it["means"]
        texts = [r["text"] for r in resp]
        order, ties = R.final_order(means)
        rid = f"kwise-{stable_hash(it['prompt'], texts, length=20)}"
        k = len(resp)
        # A score per response for the pairwise rows: the reward when a reward model ranked,
        # else K + 1 - mean rank (K for a response every judgement put first, 1 for last).
        score = it["scores"] or [k + 1 - m for m in means]
        pair_counts["tied_prompts"] += bool(ties)
        rows.append(
            {
                "id": rid,
                "prompt": it["prompt"],
                "responses": [texts[i] for i in order],
                "models": [resp[i]["model"] for i in order],
                "mean_ranks": [means[i] for i in order],
                "method": "kwise_ranking",
                "run_id": ctx.run_id,
                "extra": json.dumps(
                    {
                        "prompt_id": it["id"],
                        "judge": cfg.judge.type,
                        "judge_model": ctx.model.name if cfg.judge.type == "llm" else None,
                        # original index of each response listed in `responses` (responder order)
                        "original_index": order,
                        "generation_ids": [resp[i]["generation_id"] for i in order],
                        "ties": [[order.index(i) for i in g] for g in ties],
                        "judgements": it["judgements"],
                    },
                    sort_keys=True,
                ),
            }
        )
        pairs, skipped = R.derived_pairs(order, means, texts, cfg.pairs)
        pair_counts["skipped_tie"] += skipped["tie"]
        pair_counts["skipped_identical_responses"] += skipped["identical_responses"]
        for better, worse in pairs:
            prefs.append(
                {
                    "prompt": it["prompt"],
                    "chosen": texts[better],
                    "rejected": texts[worse],
                    "score_chosen": float(score[better]),
                    "score_rejected": float(score[worse]),
                    "model_chosen": resp[better]["model"],
                    "model_rejected": resp[worse]["model"],
                    "method": "kwise_ranking",
                    "iteration": None,
                    "run_id": ctx.run_id,
                    "extra": {
                        "ranking_id": rid,
                        "mean_rank_chosen": means[better],
                        "mean_rank_rejected": means[worse],
                        "pairs": cfg.pairs,
                    },
                }
            )
    # Two pairs of one prompt with the same texts (a response repeated at two ranks) are one
    # row: the first, from the better-ranked copies, is kept.
    unique: dict[str, dict] = {}
    for p in prefs:
        unique.setdefault(
            preference_id("kwise_ranking", p["prompt"], p["chosen"], p["rejected"]), p
        )
    pair_counts["duplicates_merged"] = len(prefs) - len(unique)
    prefs = list(unique.values())
    pair_counts["rows"] = len(prefs)
    return rows, prefs, pair_counts
