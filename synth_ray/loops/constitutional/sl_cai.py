"""The SL-CAI loop: stages and job (see the package docstring)."""

from __future__ import annotations

import logging
import math
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
from synth_ray.loops.constitutional import constitution as C
from synth_ray.loops.constitutional.config import ConstitutionalSLConfig
from synth_ray.loops.self_rewarding.seeds import chat_row, load_ift
from synth_ray.loops.swap import ServedModel
from synth_ray.models.resolve import ResolvedModel, resolve_model
from synth_ray.stages.generate import generate_rows
from synth_ray.stages.records import request_id, stage_sampling, write_preferences, write_table_dir
from synth_ray.train.api import train_model

log = logging.getLogger(__name__)

METHOD = "constitutional_sl"
CHAIN_SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("round", pa.int64()),
        ("principle", pa.string()),
        ("critique", pa.string()),
        ("text", pa.string()),  # the response after this round (round 0: the initial response)
        ("request_id", pa.string()),
    ]
)


class Inputs:
    """What an iteration reads, loaded once per stage without Ray."""

    def __init__(self, cfg: ConstitutionalSLConfig, rejects_dir: str | None = None):
        self.constitution = C.load_constitution(cfg.constitution)
        self.examples = C.load_fewshot(cfg.fewshot, self.constitution)[: cfg.fewshot_examples]
        prompts = C.load_prompts(cfg.red_team)
        self.prompts = prompts[: cfg.max_prompts] if cfg.max_prompts else prompts
        n_helpful = math.ceil(cfg.helpful_ratio * len(self.prompts) / cfg.helpful_samples)
        if cfg.helpful_source == "data":
            n_helpful = math.ceil(cfg.helpful_ratio * len(self.prompts))
        self.helpful = load_ift(cfg.helpful, rejects_dir)[:n_helpful] if n_helpful else []


def _request(prefix: str, msgs: list[dict], sampling_cfg, key: str, model: ResolvedModel):
    sampling = stage_sampling(sampling_cfg, None, key)
    return {
        "id": request_id(prefix, msgs, sampling, model.fingerprint),
        "messages": msgs,
        "sampling": sampling,
    }


def _text(g: dict | None) -> tuple[str | None, str | None]:
    """(completion, None) or (None, why) of a generation row."""
    if g is None:
        return None, "no generation row"
    if g.get("error"):
        return None, str(g["error"])[:500]
    text = (g.get("completion") or "").strip()
    return (text, None) if text else (None, "empty completion")


def write_chain(path: str, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["prompt"]), schema=CHAIN_SCHEMA)
    write_table_dir(path, table)


def read_chain(path: str) -> list[dict]:
    table = read_parquet_dir(path)
    return table.to_pylist() if table is not None else []


def round_requests(
    chain: list[dict], inp: Inputs, cfg: ConstitutionalSLConfig, r: int, m_t: ResolvedModel
) -> list[tuple[dict, C.Principle, dict]]:
    """(previous chain row, principle, critique request) for every prompt alive after round
    r - 1."""
    out = []
    for row in chain:
        p = C.sample_principle(inp.constitution, row["prompt"], r, cfg.seed)
        msgs = C.critique_messages(row["prompt"], row["text"], p, inp.examples, inp.constitution)
        out.append((row, p, _request(f"crit{r}", msgs, cfg.critique_sampling, row["prompt"], m_t)))
    return out


@JOBS.register(METHOD)
class ConstitutionalSL(IterativeJob):
    """SL-CAI: respond, critique and revise under sampled principles, SFT on the revisions."""

    config_cls = ConstitutionalSLConfig

    def preflight(self, config: ConstitutionalSLConfig) -> None:  # type: ignore[override]
        check_loop_engine(config)
        for field in ("constitution", "fewshot", "red_team", "helpful"):
            try:
                if field == "constitution":
                    C.load_constitution(config.constitution)
                elif field == "fewshot":
                    C.load_fewshot(config.fewshot, C.load_constitution(config.constitution))
                elif field == "red_team":
                    C.load_prompts(config.red_team)
                elif config.helpful_ratio > 0 and not load_ift(config.helpful):
                    raise ValueError("no usable instruction pairs")
            except (OSError, ValueError) as exc:
                raise ConfigError(f"field '{field}': {exc}") from None

    def run(self, ctx: JobContext) -> None:
        cfg: ConstitutionalSLConfig = ctx.config  # type: ignore[assignment]
        served = ServedModel(cfg.engine, cfg.swap)
        self.run_iterations(
            ctx,
            served,
            first=lambda it0: ctx.model,
            step=lambda it, m_t: self._iteration(ctx, it, served, m_t),
        )

    def _iteration(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> ResolvedModel:
        cfg: ConstitutionalSLConfig = ctx.config
        inp = Inputs(cfg)
        src = cfg.red_team or "shipped red_team.jsonl"
        it.manifest["datasets"]["red_team"] = {"path": src, "rows": len(inp.prompts), "role": "in"}
        it.manifest["settings"]["principles"] = [p.name for p in inp.constitution]
        resp = it.stage("respond", lambda: self._respond(ctx, it, served, m_t))
        rounds = [
            it.stage(f"revise_{r}", lambda r=r: self._revise(ctx, it, served, m_t, r))
            for r in range(1, cfg.revisions + 1)
        ]
        data = it.stage("sft_data", lambda: self._sft_data(ctx, it, m_t))
        base = ctx.model if cfg.train_from == "base" else m_t
        trained = it.stage("train", lambda: self._train(it, served, base, cfg))
        m_next = resolve_model(trained["model"])
        it.manifest["model_out"] = model_record(m_next)
        swap = it.stage("swap", lambda: {"probe": served.use(m_next, parent=m_t)})
        it.manifest["probe"] = swap["probe"]
        it.finish(
            {
                "prompts": len(inp.prompts),
                "responded": resp["responded"],
                "revised": [x["revised"] for x in rounds],
                "harmless_rows": data["harmless_rows"],
                "helpful_rows": data["helpful_rows"],
                "rejected": data["rejected"],
                "train_rows": trained.get("rows"),
            }
        )
        return m_next

    def _respond(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> dict[str, Any]:
        """M_t's initial response to every red-team prompt and, with ``helpful_source: model``,
        its ``helpful_samples`` responses to each helpfulness instruction."""
        cfg: ConstitutionalSLConfig = ctx.config
        inp = Inputs(cfg, ctx.layout.rejects if it.t == 0 else None)
        probe = served.ensure(m_t)
        red = [
            _request("resp", [{"role": "user", "content": x}], cfg.response_sampling, x, m_t)
            for x in inp.prompts
        ]
        helpful = self._helpful_requests(cfg, inp, m_t)
        gens, stats = generate_rows(
            served.engine, red + helpful, it.sub("data/respond"), ctx.run_id, "messages"
        )
        by_id = {g["request_id"]: g for g in gens if g["sample_index"] == 0}
        chain, rejects = [], []
        for x, r in zip(inp.prompts, red):
            text, why = _text(by_id.get(r["id"]))
            if why:
                rejects.append(
                    reject("respond", "no_response", stage="respond", id=r["id"], detail=why)
                )
                continue
            chain.append(
                {
                    "prompt": x,
                    "round": 0,
                    "principle": None,
                    "critique": None,
                    "text": text,
                    "request_id": r["id"],
                }
            )
        write_chain(it.sub("chain/r0"), chain)
        write_rejects(it.sub("rejects"), rejects, "respond")
        return {
            "probe": probe,
            "requested": len(red) + len(helpful),
            "responded": len(chain),
            "generated": stats.generated,
            "skipped_done": stats.skipped_done,
        }

    @staticmethod
    def _helpful_requests(cfg: ConstitutionalSLConfig, inp: Inputs, m_t: ResolvedModel):
        if cfg.helpful_source != "model":
            return []
        sampling = cfg.response_sampling.model_copy(update={"n": cfg.helpful_samples})
        return [
            _request(
                "help",
                [{"role": "user", "content": p["instruction"]}],
                sampling,
                p["instruction"],
                m_t,
            )
            for p in inp.helpful
        ]

    def _revise(self, ctx, it: Iteration, served, m_t: ResolvedModel, r: int) -> dict[str, Any]:
        """Round r: a critique of each prompt's current response under a sampled principle,
        then a revision under its paired request. A prompt whose critique or revision fails
        or is empty keeps its current response and leaves the chain (a reject says why)."""
        cfg: ConstitutionalSLConfig = ctx.config
        inp = Inputs(cfg)
        chain = read_chain(it.sub(f"chain/r{r - 1}"))
        items = round_requests(chain, inp, cfg, r, m_t)
        served.ensure(m_t)
        rejects: list[dict] = []

        def turn(label: str, reqs: list[dict]) -> dict[str, str]:
            """Generate ``reqs`` (one turn of the round); request id -> its text without the
            label, the others rejects (``no_<label>``) with their reason."""
            gens, _ = generate_rows(
                served.engine, reqs, it.sub(f"data/{label}_{r}"), ctx.run_id, "messages"
            )
            by = {g["request_id"]: g for g in gens}
            out = {}
            for q in reqs:
                text, why = _text(by.get(q["id"]))
                text = C.strip_label(text, label) if text else None
                if text:
                    out[q["id"]] = text
                else:
                    detail = why or "only a label"
                    rejects.append(
                        reject(label, f"no_{label}", stage=f"revise_{r}", id=q["id"], detail=detail)
                    )
            return out

        crit = turn("critique", [q for _, _, q in items])
        revise = [
            (row, p, crit[q["id"]], C.revision_messages(q["messages"], crit[q["id"]], p))
            for row, p, q in items
            if q["id"] in crit
        ]
        revise = [
            (row, p, c, _request(f"rev{r}", msgs, cfg.revision_sampling, row["prompt"], m_t))
            for row, p, c, msgs in revise
        ]
        rev = turn("revision", [q for *_, q in revise])
        out = [
            {
                "prompt": row["prompt"],
                "round": r,
                "principle": p.name,
                "critique": critique,
                "text": rev[q["id"]],
                "request_id": q["id"],
            }
            for row, p, critique, q in revise
            if q["id"] in rev
        ]
        write_chain(it.sub(f"chain/r{r}"), out)
        write_rejects(it.sub("rejects"), rejects, f"revise_{r}")
        return {
            "datasets": {f"chain_r{r}": dataset_record(it.sub(f"chain/r{r}"))},
            "in": len(chain),
            "revised": len(out),
            "principles": dict(sorted(Counter(x["principle"] for x in out).items())),
        }

    def _sft_data(self, ctx, it: Iteration, m_t: ResolvedModel) -> dict[str, Any]:
        """The SFT rows: (prompt, final revision) per red-team prompt (``train_on: all``: every
        revision), then helpful rows up to ``helpful_ratio`` of them; and preference rows
        (chosen = final revision, rejected = initial response) for the RL stage's checks."""
        cfg: ConstitutionalSLConfig = ctx.config
        inp = Inputs(cfg)
        chains = [read_chain(it.sub(f"chain/r{r}")) for r in range(cfg.revisions + 1)]
        first = {row["prompt"]: row for row in chains[0]}
        latest: dict[str, dict] = {}
        revisions: list[dict] = []
        for rows in chains[1:]:
            for row in rows:
                latest[row["prompt"]] = row
                revisions.append(row)
        rejects = [
            reject(
                "sft_data",
                "never_revised",
                stage="sft_data",
                id=row["request_id"],
                detail="no round produced a revision",
            )
            for p, row in first.items()
            if p not in latest
        ]
        targets = revisions if cfg.train_on == "all" else list(latest.values())
        rows = [chat_row(x["prompt"], x["text"], f"revision_r{x['round']}") for x in targets]
        helpful = self._helpful_rows(ctx, it, inp, m_t)
        n_helpful = min(len(helpful), round(cfg.helpful_ratio * len(rows)))
        rows += helpful[:n_helpful]
        prefs = [
            {
                "prompt": p,
                "chosen": x["text"],
                "rejected": first[p]["text"],
                "model_chosen": f"{m_t.fingerprint}:revision_r{x['round']}",
                "model_rejected": m_t.fingerprint,
                "method": METHOD,
                "iteration": it.t,
                "run_id": ctx.run_id,
                "extra": {"principle": x["principle"], "rounds": x["round"]},
            }
            for p, x in latest.items()
            if x["text"].strip() != first[p]["text"].strip()
        ]
        write_preferences(it.sub("preferences"), prefs)
        table = (
            pa.Table.from_pylist([{"messages": r["messages"], "origin": r["origin"]} for r in rows])
            if rows
            else None
        )
        if table is not None:
            write_table_dir(it.sub("sft"), table)
        write_rejects(it.sub("rejects"), rejects, "sft_data")
        return {
            "datasets": {
                "sft": dataset_record(it.sub("sft")),
                "preferences": dataset_record(it.sub("preferences")),
            },
            "harmless_rows": len(targets),
            "helpful_rows": n_helpful,
            "preference_pairs": len(prefs),
            "rejected": len(rejects),
        }

    @staticmethod
    def _helpful_rows(ctx, it: Iteration, inp: Inputs, m_t: ResolvedModel) -> list[dict]:
        cfg: ConstitutionalSLConfig = ctx.config
        if cfg.helpful_source == "data":
            return [chat_row(p["instruction"], p["output"], "helpful_data") for p in inp.helpful]
        reqs = ConstitutionalSL._helpful_requests(cfg, inp, m_t)
        table = read_parquet_dir(it.sub("data/respond"))
        gens = table.to_pylist() if table is not None else []
        by = {(g["request_id"], g["sample_index"]): g for g in gens if not g.get("error")}
        out = []
        for p, r in zip(inp.helpful, reqs):
            for k in range(cfg.helpful_samples):
                text, _ = _text(by.get((r["id"], k)))
                if text:
                    out.append(chat_row(p["instruction"], text, "helpful_model"))
        return out

    @staticmethod
    def _train(it: Iteration, served, base: ResolvedModel, cfg) -> dict[str, Any]:
        table = read_parquet_dir(it.sub("sft"))
        rows = table.to_pylist() if table is not None else []
        it.manifest["settings"]["sft_base"] = model_record(base)
        if not rows:
            return {"model": base.source, "rows": 0, "skipped": "no SFT rows"}
        settings = dict(cfg.sft)
        served.before_training(settings.get("scaling") or {})
        res = train_model("sft", rows, base.source, it.sub("m_next"), settings)
        return {
            "model": res.model_dir,
            "rows": len(rows),
            "metrics": res.metrics,
            "reused": res.reused,
            "base": model_record(base),
        }
