"""The ReST-EM loop: stages and job (see the package docstring)."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
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
from synth_ray.loops.rest_em.config import RestEMConfig
from synth_ray.loops.rest_em.problems import load_split
from synth_ray.loops.swap import ServedModel
from synth_ray.models.resolve import ResolvedModel, resolve_model
from synth_ray.stages.generate import generate_rows
from synth_ray.stages.records import request_id, stage_sampling, write_table_dir
from synth_ray.train.api import train_model

log = logging.getLogger(__name__)

METHOD = "rest_em"


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k from n samples of which c are correct (Chen et al.
    2021): 1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if n <= 0:
        return 0.0
    k = min(k, n)
    if n - c < k:
        return 1.0
    out = 1.0
    for i in range(n - c + 1, n + 1):
        out *= 1.0 - k / i
    return 1.0 - out


def sample_requests(problems: list[dict], sampling_cfg, n: int, model: ResolvedModel, prefix: str):
    """One request per problem for ``n`` samples by ``model`` (seeded per problem; sample k
    uses seed + k): its id hashes the prompt, the sampling and the model's fingerprint."""
    base = sampling_cfg.model_copy(update={"n": n})
    out = []
    for p in problems:
        msgs = [{"role": "user", "content": p["prompt"]}]
        sampling = stage_sampling(base, None, p["id"])
        rid = request_id(prefix, msgs, sampling, model.fingerprint)
        out.append({"id": rid, "messages": msgs, "sampling": sampling, "problem_id": p["id"]})
    return out


def verify_inputs(problems: list[dict], reqs: list[dict], gens: list[dict], split: str, n: int):
    """Rows for the verify stage: every sample of every problem (a missing or failed sample
    has no output and gets reward 0 from the stage), the problem's verifier fields beside."""
    by_req: dict[str, dict[int, dict]] = defaultdict(dict)
    for g in gens:
        by_req[g["request_id"]][int(g["sample_index"])] = g
    rows = []
    for p, r in zip(problems, reqs):
        for k in range(n):
            g = by_req[r["id"]].get(k)
            ok = g is not None and not g.get("error")
            rows.append(
                {
                    "id": f"{r['id']}-s{k}",
                    "problem_id": p["id"],
                    "sample_index": k,
                    "source": "model",
                    "split": split,
                    "output": (g.get("completion") or "") if ok else None,
                    "generation_error": None if ok else ((g or {}).get("error") or "no sample"),
                    **p["fields"],
                }
            )
    return rows


def reference_inputs(problems: list[dict]) -> list[dict]:
    """The problems' own worked solutions as samples (``include_reference_solutions``)."""
    return [
        {
            "id": f"ref-{p['id']}",
            "problem_id": p["id"],
            "sample_index": -1,
            "source": "reference",
            "split": "train",
            "output": p["reference"],
            "generation_error": None,
            **p["fields"],
        }
        for p in problems
        if p.get("reference")
    ]


def select(
    problems: list[dict], verified: list[dict], cap: int, t: int
) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """(kept SFT rows, rejects, counts): per problem at most ``cap`` samples with reward 1,
    references first then by sample index; a problem with none is a reject with its reason."""
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for v in verified:
        by_problem[v["problem_id"]].append(v)
    kept, rejects = [], []
    over_cap = 0
    for p in problems:
        vs = sorted(by_problem.get(p["id"], []), key=lambda v: v["sample_index"])
        good = [v for v in vs if v["reward"] == 1]
        if not good:
            if not vs:
                why, detail = "no_samples", "no sample was verified"
            elif all(v.get("generation_error") for v in vs):
                why, detail = "generation_failed", vs[0]["generation_error"]
            else:
                codes = Counter(v["verify_reason"].split(":", 1)[0] for v in vs)
                why = "no_correct_sample"
                detail = f"0/{len(vs)} correct: " + ", ".join(
                    f"{c} {n}" for c, n in sorted(codes.items())
                )
            rejects.append(reject("select", why, stage="select", id=p["id"], detail=detail))
            continue
        over_cap += max(0, len(good) - cap)
        for v in good[:cap]:
            kept.append(
                {
                    "id": v["id"],
                    "instruction": p["prompt"],
                    "input": "",
                    "output": v["output"],
                    "problem_id": p["id"],
                    "sample_index": v["sample_index"],
                    "source": v["source"],
                    "iteration": t,
                    "method": METHOD,
                }
            )
    solved = len({k["problem_id"] for k in kept})
    counts = {
        "problems": len(problems),
        "solved": solved,
        "kept": len(kept),
        "kept_references": sum(1 for k in kept if k["source"] == "reference"),
        "over_cap": over_cap,
        "rejected": dict(sorted(Counter(r["reason"] for r in rejects).items())),
    }
    return kept, rejects, counts


def pass_figures(verified: list[dict], k: int) -> dict[str, Any]:
    """Mean pass@1 and pass@k over the problems of ``verified`` (model samples)."""
    n: Counter = Counter()
    c: Counter = Counter()
    for v in verified:
        if v["source"] == "model":
            n[v["problem_id"]] += 1
            c[v["problem_id"]] += int(v["reward"] == 1)
    if not n:
        return {"problems": 0, "pass@1": None, f"pass@{k}": None}
    return {
        "problems": len(n),
        "samples": sum(n.values()),
        "correct": sum(c.values()),
        "pass@1": round(sum(pass_at_k(n[p], c[p], 1) for p in n) / len(n), 4),
        f"pass@{k}": round(sum(pass_at_k(n[p], c[p], k) for p in n) / len(n), 4),
    }


def run_verifier(cfg: RestEMConfig, rows: list[dict], out: str) -> list[dict]:
    """The verify stage (Ray Data, verifier actors; code runs in the sandbox) over ``rows``,
    written to ``out``; returns the verified rows without the verifier's input fields."""
    import ray.data

    from synth_ray.stages.verify.stage import verify_rows

    keep = ("id", "problem_id", "sample_index", "source", "split", "output", "generation_error")
    if rows:
        ds = verify_rows(ray.data.from_items(rows), cfg.verify_config())
        got = [
            {
                **{k: r.get(k) for k in keep},
                **{k: r[k] for k in ("reward", "verify_reason", "verifier")},
            }
            for r in ds.take_all()
        ]
    else:
        got = []
    got.sort(key=lambda r: r["id"])
    write_table_dir(
        out, pa.Table.from_pylist(got) if got else pa.table({"id": pa.array([], pa.string())})
    )
    return got


def read_rows(path: str) -> list[dict]:
    table = read_parquet_dir(path)
    return table.to_pylist() if table is not None and table.num_rows else []


@JOBS.register(METHOD)
class RestEM(IterativeJob):
    """ReST-EM: M_t samples, the verifier keeps the correct, SFT of the base -> M_{t+1}."""

    config_cls = RestEMConfig

    def preflight(self, config: RestEMConfig) -> None:  # type: ignore[override]
        check_loop_engine(config)
        try:
            train, held = load_split(config)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ConfigError(f"field 'problems': {exc}") from None
        if not train:
            raise ConfigError("field 'problems': no usable training problems")
        kinds = {p["kind"] for p in train + held}
        if kinds != {config.verifier}:
            raise ConfigError(
                f"field 'verifier': {config.verifier} cannot check {'/'.join(sorted(kinds))} "
                "problems"
            )

    def run(self, ctx: JobContext) -> None:
        cfg: RestEMConfig = ctx.config  # type: ignore[assignment]
        served = ServedModel(cfg.engine, cfg.swap)
        self.run_iterations(
            ctx,
            served,
            first=lambda it0: ctx.model,
            step=lambda it, m_t: self._iteration(ctx, it, served, m_t),
        )

    def _iteration(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> ResolvedModel:
        cfg: RestEMConfig = ctx.config
        train, held = load_split(cfg)
        src = cfg.problems or f"generated: {cfg.generate.generator} seed {cfg.generate.seed}"
        it.manifest["datasets"]["problems"] = {"path": src, "rows": len(train), "role": "in"}
        it.manifest["datasets"]["heldout"] = {"path": src, "rows": len(held), "role": "in"}
        it.manifest["settings"]["verifier"] = cfg.verify_config().model_dump(mode="json")
        gen = it.stage("generate", lambda: self._generate(ctx, it, served, m_t))
        ver = it.stage("verify", lambda: self._verify(ctx, it, m_t))
        sel = it.stage("select", lambda: self._select(ctx, it))
        trained = it.stage("train", lambda: self._train(ctx, it, served))
        m_next = resolve_model(trained["model"])
        it.manifest["model_out"] = model_record(m_next)
        swap = it.stage("swap", lambda: {"probe": served.use(m_next, parent=m_t)})
        it.manifest["probe"] = swap["probe"]
        ev = it.stage("evaluate", lambda: self._evaluate(ctx, it, served, m_next))
        before = ver.get("heldout_m0") or self._previous_eval(ctx, it)
        k = f"pass@{cfg.pass_k}"
        training = trained.get("metrics") or {}
        it.finish(
            {
                "samples": ver["samples"],
                "generation_errors": gen["errors"],
                "correct": ver["correct"],
                "correct_rate": ver["correct_rate"],
                "problems": sel["problems"],
                "problems_solved": sel["solved"],
                "kept_rows": sel["kept"],
                "kept_references": sel["kept_references"],
                "rejected": sel["rejected"],
                "train_rows": trained.get("rows"),
                "train_loss": training.get("train_loss"),
                "train_last_logged_loss": training.get("last_logged_loss"),
                "trained": trained.get("skipped") is None,
                "heldout_pass@1_before": (before or {}).get("pass@1"),
                f"heldout_{k}_before": (before or {}).get(k),
                "heldout_pass@1_after": ev.get("pass@1"),
                f"heldout_{k}_after": ev.get(k),
            }
        )
        return m_next

    def _previous_eval(self, ctx, it: Iteration) -> dict[str, Any] | None:
        if it.t == 0:
            return None
        prev = Iteration(ctx.layout.root, it.t - 1, ctx.run_id)
        return prev.result("evaluate") or None

    def _requests(self, ctx, it: Iteration, m_t: ResolvedModel):
        cfg: RestEMConfig = ctx.config
        train, held = load_split(cfg)
        reqs = sample_requests(train, cfg.sampling, cfg.samples, m_t, "restem")
        held_reqs = (
            sample_requests(held, cfg.evaluation_sampling, cfg.eval_samples, m_t, "heldout")
            if it.t == 0
            else []
        )
        return train, held, reqs, held_reqs

    def _generate(self, ctx, it: Iteration, served, m_t: ResolvedModel) -> dict[str, Any]:
        """The E-step's samples: ``samples`` per training problem by M_t; in iteration 0 also
        ``eval_samples`` per held-out problem by M_0 (its pass@k)."""
        probe = served.ensure(m_t)
        cfg: RestEMConfig = ctx.config
        if it.t == 0:
            _, _, rejects = load_split(cfg, with_rejects=True)
            write_rejects(ctx.layout.rejects, rejects, "problems")
        _, _, reqs, held_reqs = self._requests(ctx, it, m_t)
        gens, stats = generate_rows(
            served.engine, reqs + held_reqs, it.sub("data/generate"), ctx.run_id, "messages"
        )
        return {
            "probe": probe,
            "requests": len(reqs) + len(held_reqs),
            "samples": len(gens),
            "errors": sum(1 for g in gens if g["error"]),
            "generated": stats.generated,
            "skipped_done": stats.skipped_done,
        }

    def _verify(self, ctx, it: Iteration, m_t: ResolvedModel) -> dict[str, Any]:
        """Every sample through the verify stage (and the references, when included)."""
        cfg: RestEMConfig = ctx.config
        train, held, reqs, held_reqs = self._requests(ctx, it, m_t)
        gens = read_rows(it.sub("data/generate"))
        rows = verify_inputs(train, reqs, gens, "train", cfg.samples)
        if cfg.include_reference_solutions:
            rows += reference_inputs(train)
        if held_reqs:
            rows += verify_inputs(held, held_reqs, gens, "heldout", cfg.eval_samples)
        got = run_verifier(cfg, rows, it.sub("verified"))
        model_train = [v for v in got if v["split"] == "train" and v["source"] == "model"]
        correct = sum(v["reward"] for v in model_train)
        refs = [v for v in got if v["source"] == "reference"]
        out = {
            "datasets": {"verified": dataset_record(it.sub("verified"))},
            "samples": len(model_train),
            "correct": correct,
            "correct_rate": round(correct / len(model_train), 4) if model_train else None,
            "reasons": dict(
                sorted(Counter(v["verify_reason"].split(":")[0] for v in model_train).items())
            ),
            "references": len(refs),
            "references_correct": sum(v["reward"] for v in refs),
        }
        if held_reqs:
            out["heldout_m0"] = pass_figures(
                [v for v in got if v["split"] == "heldout"], cfg.pass_k
            )
        return out

    def _select(self, ctx, it: Iteration) -> dict[str, Any]:
        cfg: RestEMConfig = ctx.config
        train, _ = load_split(cfg)
        verified = [v for v in read_rows(it.sub("verified")) if v["split"] == "train"]
        kept, rejects, counts = select(train, verified, cfg.max_per_problem, it.t)
        for k in kept:
            k["run_id"] = ctx.run_id
        write_rejects(it.sub("rejects"), rejects, "select")
        table = pa.Table.from_pylist(kept) if kept else pa.table({"id": pa.array([], pa.string())})
        write_table_dir(it.sub("kept"), table)
        return {"datasets": {"kept": dataset_record(it.sub("kept"))}, **counts}

    def _train(self, ctx, it: Iteration, served) -> dict[str, Any]:
        """The M-step: SFT of the base model (never M_t) on this iteration's kept solutions.
        None kept: M_{t+1} = the base model, said so."""
        cfg: RestEMConfig = ctx.config
        base: ResolvedModel = ctx.model
        rows = [
            {"id": r["id"], "instruction": r["instruction"], "input": "", "output": r["output"]}
            for r in read_rows(it.sub("kept"))
        ]
        it.manifest["settings"]["m_step_base"] = model_record(base)
        if not rows:
            log.warning(
                "iteration %d: no correct solution kept: M_%d = the base model", it.t, it.t + 1
            )
            return {
                "model": base.source,
                "rows": 0,
                "skipped": "no kept solutions: M_{t+1} is the base model",
                "base": model_record(base),
            }
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

    def _evaluate(self, ctx, it: Iteration, served, m_next: ResolvedModel) -> dict[str, Any]:
        """pass@1 and pass@k of M_{t+1} on the held-out problems (``eval_samples`` each)."""
        cfg: RestEMConfig = ctx.config
        _, held = load_split(cfg)
        if not held:
            return {"problems": 0}
        served.ensure(m_next)
        reqs = sample_requests(held, cfg.evaluation_sampling, cfg.eval_samples, m_next, "heldout")
        gens, _ = generate_rows(served.engine, reqs, it.sub("data/heldout"), ctx.run_id, "messages")
        rows = verify_inputs(held, reqs, gens, "heldout", cfg.eval_samples)
        got = run_verifier(cfg, rows, it.sub("heldout_verified"))
        return {
            "datasets": {"heldout_verified": dataset_record(it.sub("heldout_verified"))},
            **pass_figures(got, cfg.pass_k),
        }
