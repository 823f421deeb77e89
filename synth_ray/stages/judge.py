"""The judge stage: score rows with the LLM judge or the reward model, keep those over a threshold.

Two ways to score, one meaning (same rubrics, parsers and reward scorer as the Serve app):

- ``url`` set: rows go in batches to the scoring service (``POST /v1/judge`` or ``/v1/reward``,
  ``synth_ray.serve``), ``concurrency`` requests in flight, bearer token from ``token_env`` (of
  the driver). A 503
  or 429 is retried after its ``Retry-After``; a row the service could not score after
  ``retries`` attempts gets a null score with the reason (and becomes a reject, not a lost row).
- no ``url``: in-process on Ray Data. ``scorer: judge`` sends the rubric prompts through the
  job's generation engine (``samples`` rows per item, vLLM or OpenAI-compatible), parses each
  judgement and averages per row. By default (``output: auto``) the judgements are constrained
  by structured outputs so each ends in a parseable score (regex on vLLM, JSON
    ``response_format`` on OpenAI-compatible servers); ``output: free`` is the papers' free
  text. ``scorer: reward`` runs ``RewardScorer`` on an actor pool.

Columns added: ``judge_score`` (float, null when unscored), ``judge_samples`` (per-sample
scores), ``judge_reason`` (why the score is null), ``judge_model``. ``keep_scored`` then splits:
rows with ``judge_score >= threshold`` go on, the others are written to ``rejects/`` with reason
``judge_below_threshold`` or ``judge_unscored``: every input row is one or the other.

``judge_rows`` records the parse rate in run.json (``counts.judge``: rubric, output, samples,
parsed, parse_rate). Defaults are Instruction Backtranslation's self-curation (rubric
``curation5``, keep >= 4, its A_4 set); Self-Rewarding's judge is ``rubric: additive5`` with ``samples: 3``.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from synth_ray.config import StrictModel
from synth_ray.io.fs import join as fs_join
from synth_ray.io.ids import stable_hash
from synth_ray.io.rejects import drop_stage, reject, write_rejects
from synth_ray.stages import rubrics

if TYPE_CHECKING:
    import ray.data

    from synth_ray.engines import Engine

SCORE_COLUMNS = {
    "judge_score": pa.float64(),
    "judge_samples": pa.list_(pa.float64()),
    "judge_reason": pa.string(),
    "judge_model": pa.string(),
}


class JudgeStageConfig(StrictModel):
    scorer: Literal["judge", "reward"] = Field(
        "judge", description="judge: LLM-as-a-judge with a rubric; reward: a reward model."
    )
    rubric: str = Field("curation5", description="judge only: additive5 | curation5.")
    samples: int = Field(
        1, ge=1, description="judge only: judgements averaged per row (Self-Rewarding: 3)."
    )
    threshold: float | None = Field(
        4.0,
        description="Keep rows scoring >= this (Backtranslation keeps >= 4 or = 5); "
        "null: keep every scored row (unscored rows are still rejected).",
    )
    url: str | None = Field(
        None,
        description="Base URL of the scoring service (e.g. http://scoring:8000); unset: "
        "score in-process on Ray Data.",
    )
    token_env: str = Field(
        "SYNTH_RAY_SERVE_TOKEN", description="Environment variable with the service's token."
    )
    reward_model: str = Field(
        "tiny-reward", description="reward, in-process only: the reward model to load."
    )
    prompt_field: str = Field("instruction", description="Column holding the prompt.")
    input_field: str | None = Field(
        "input", description="Optional column appended to the prompt (Alpaca's input)."
    )
    response_field: str = Field("output", description="Column holding the response.")
    batch_size: int = Field(16, ge=1, description="Rows per service request / forward pass.")
    concurrency: int = Field(4, ge=1, description="Service requests in flight.")
    retries: int = Field(5, ge=0, description="Retries of a 429/503/connection failure.")
    timeout_s: float = Field(300, gt=0, description="Per-request timeout.")
    temperature: float = Field(0.7, ge=0, description="judge, in-process: sampling temperature.")
    top_p: float = Field(0.9, gt=0, le=1, description="judge, in-process: nucleus sampling.")
    max_tokens: int = Field(256, ge=8, description="judge, in-process: tokens per judgement.")
    seed: int | None = Field(None, description="judge, in-process: base sampling seed.")
    output: Literal["auto", "free", "regex", "json"] = Field(
        "auto",
        description="judge, in-process: how judgements are produced. regex: structured outputs "
        "constrain each to '<reasoning line>\\nScore: N' (N in the rubric's range); json: to "
        "{reasoning, score}; free: unconstrained text, parsed for its last 'Score: N' (the "
        "papers; a small model often writes no parseable score). auto: regex on the vllm "
        "engine, json (response_format) on OpenAI-compatible servers. (The service's judge "
        "has its own setting, judge.output.)",
    )
    max_reason_chars: int = Field(
        400, ge=16, description="judge, constrained: characters of reasoning at most."
    )

    @field_validator("rubric")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            rubrics.get_rubric(v)
        except KeyError as exc:  # pydantic turns ValueError, not KeyError, into a field error
            raise ValueError(exc.args[0]) from None
        return v


def _pair(row: dict[str, Any], c: JudgeStageConfig) -> tuple[str, str]:
    prompt = str(row.get(c.prompt_field) or "")
    if c.input_field and row.get(c.input_field):
        prompt += f"\n\n{row[c.input_field]}"
    return prompt, str(row.get(c.response_field) or "")


def _with_scores(batch: pa.Table, scores: list[dict[str, Any]]) -> pa.Table:
    for name, typ in SCORE_COLUMNS.items():
        if name in batch.column_names:
            batch = batch.drop_columns([name])
        batch = batch.append_column(name, pa.array([s.get(name) for s in scores], typ))
    return batch


# -- over HTTP ------------------------------------------------------------------------------


def _post(client, url: str, body: dict, c: JudgeStageConfig) -> tuple[dict | None, str | None]:
    import httpx

    last = "no attempt"
    for attempt in range(c.retries + 1):
        try:
            r = client.post(url, json=body)
        except httpx.HTTPError as exc:
            last, wait = f"{type(exc).__name__}: {exc}", 2.0**attempt
        else:
            if r.status_code == 200:
                return r.json(), None
            last = f"HTTP {r.status_code}: {r.text[:300]}"
            if r.status_code not in (429, 503):
                return None, last  # a request the service refuses will not pass on a retry
            wait = float(r.headers.get("retry-after") or 2.0**attempt)
        if attempt < c.retries:
            time.sleep(min(wait, 60.0))
    return None, f"service unavailable after {c.retries + 1} attempts: {last}"


def score_via_service(batch: pa.Table, config: dict[str, Any], token: str | None) -> pa.Table:
    import httpx

    c = JudgeStageConfig.model_validate(config)
    pairs = [_pair(r, c) for r in batch.to_pylist()]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    items = [{"prompt": p, "response": r} for p, r in pairs]
    base = c.url.rstrip("/")
    with httpx.Client(timeout=c.timeout_s, headers=headers) as client:
        if c.scorer == "reward":
            reply, err = _post(client, base + "/v1/reward", {"items": items}, c)
            scores = (
                [
                    {
                        "judge_score": x["score"],
                        "judge_samples": [x["score"]],
                        "judge_reason": None,
                        "judge_model": reply["model"],
                    }
                    for x in reply["results"]
                ]
                if reply
                else []
            )
        else:
            body = {"rubric": c.rubric, "items": items, "samples": c.samples}
            reply, err = _post(client, base + "/v1/judge", body, c)
            scores = (
                [
                    {
                        "judge_score": x["score"],
                        "judge_samples": x["samples"],
                        "judge_reason": x["reason"],
                        "judge_model": reply["model"],
                    }
                    for x in reply["results"]
                ]
                if reply
                else []
            )
    if err:
        scores = [
            {"judge_score": None, "judge_samples": [], "judge_reason": err, "judge_model": None}
        ] * batch.num_rows
    return _with_scores(batch, scores)


# -- in-process -----------------------------------------------------------------------------


class RewardScoring:
    """Ray Data actor: a ``RewardScorer`` loaded once, a forward pass per batch."""

    def __init__(self, config: dict[str, Any]):
        from synth_ray.engines.reward_model import RewardScorer
        from synth_ray.models.resolve import resolve_model

        self.c = JudgeStageConfig.model_validate(config)
        self.scorer = RewardScorer(resolve_model(self.c.reward_model).source)

    def __call__(self, batch: pa.Table) -> pa.Table:
        pairs = [_pair(r, self.c) for r in batch.to_pylist()]
        results = self.scorer.score_pairs([p for p, _ in pairs], [r for _, r in pairs])
        return _with_scores(
            batch,
            [
                {
                    "judge_score": x.score,
                    "judge_samples": [x.score],
                    "judge_reason": None,
                    "judge_model": self.c.reward_model,
                }
                for x in results
            ],
        )


def resolve_output(output: str, engine: Engine | None) -> str:
    """``auto``: regex on the vllm engine, json (the portable ``response_format``) elsewhere."""
    if output != "auto":
        return output
    return "regex" if engine is not None and engine.name == "vllm" else "json"


def _judge_requests(batch: pa.Table, config: dict[str, Any], id_column: str) -> pa.Table:
    c = JudgeStageConfig.model_validate(config)
    rubric = rubrics.get_rubric(c.rubric)
    rows = batch.to_pylist()
    messages = [rubric.messages(*_pair(r, c)) for r in rows]
    ids = [str(r.get(id_column) or stable_hash(_pair(r, c))) for r in rows]

    def sampling(row_id: str) -> str:
        # Every row of the call carries the same constraint (the vllm engine needs all or none).
        # A seeded judge seeds each row apart (seed + a hash of its id): one seed for all rows
        # would draw the same random numbers for every judgement, correlating their scores.
        seed = None if c.seed is None else (c.seed + int(stable_hash(row_id, length=8), 16)) % 2**31
        return json.dumps(
            {
                "temperature": c.temperature,
                "top_p": c.top_p,
                "max_tokens": c.max_tokens,
                "n": c.samples,
                "seed": seed,
                **rubric.constraint(c.output, c.max_tokens, c.max_reason_chars),
            },
            sort_keys=True,
        )

    # The judged row travels with its request as JSON (its columns may clash with the engine's).
    out = pa.table(
        {
            "id": ids,
            "messages": messages,
            "sampling": [sampling(i) for i in ids],
            "judged_row": [json.dumps(r, default=str) for r in rows],
        }
    )
    return out


def _parse_samples(batch: pa.Table, rubric_name: str, output: str) -> pa.Table:
    rubric = rubrics.get_rubric(rubric_name)
    scores, reasons = [], []
    for text, err in zip(batch.column("completion").to_pylist(), batch.column("error").to_pylist()):
        if err:
            scores.append(None)
            reasons.append(f"judge request failed: {err[:300]}")
        else:
            j = rubrics.parse_judgement(text, rubric, output)
            scores.append(j.score)
            reasons.append(j.reason)
    return pa.table(
        {
            "request_id": batch.column("request_id"),
            "judged_row": batch.column("judged_row"),
            "sample_score": pa.array(scores, pa.float64()),
            "sample_reason": pa.array(reasons, pa.string()),
            "model": batch.column("model"),
        }
    )


def _aggregate(group: pa.Table) -> pa.Table:
    """One row per judged row: its samples averaged as the service averages them."""
    verdict = rubrics.aggregate(
        [
            rubrics.Judgement(s, r, "")
            for s, r in zip(
                group.column("sample_score").to_pylist(), group.column("sample_reason").to_pylist()
            )
        ]
    )
    row = json.loads(group.column("judged_row")[0].as_py())
    row.update(
        judge_score=verdict.score,
        judge_samples=verdict.samples,
        judge_reason=verdict.reason,
        judge_model=group.column("model")[0].as_py(),
    )
    return pa.Table.from_pylist([row])


def score_dataset(
    ds: ray.data.Dataset,
    config: JudgeStageConfig,
    engine: Engine | None = None,
    id_column: str = "id",
) -> ray.data.Dataset:
    """``ds`` with the score columns added (see the module docstring)."""
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    cfg = config.model_dump()
    if config.url:
        # The token is read here, in the driver (whose environment the user controls), and
        # travels as a task argument: Ray does not log those.
        token = os.environ.get(config.token_env) or None
        return ds.map_batches(
            score_via_service,
            fn_kwargs={"config": cfg, "token": token},
            batch_format="pyarrow",
            batch_size=config.batch_size,
            num_cpus=0,
            compute=TaskPoolStrategy(size=config.concurrency),
        )
    if config.scorer == "reward":
        return ds.map_batches(
            RewardScoring,
            fn_constructor_kwargs={"config": cfg},
            batch_format="pyarrow",
            batch_size=config.batch_size,
            num_cpus=1,
            compute=ActorPoolStrategy(size=1),
        )
    if engine is None:
        raise ValueError("judge stage: no url and no engine to judge with in-process")
    cfg["output"] = resolve_output(config.output, engine)
    requests = ds.map_batches(
        _judge_requests,
        fn_kwargs={"config": cfg, "id_column": id_column},
        batch_format="pyarrow",
        num_cpus=0.25,
    )
    samples = engine.generate(requests, "messages").map_batches(
        _parse_samples,
        fn_kwargs={"rubric_name": config.rubric, "output": cfg["output"]},
        batch_format="pyarrow",
        num_cpus=0.25,
    )
    return samples.groupby("request_id").map_groups(_aggregate, batch_format="pyarrow")


def _split(batch: pa.Table, threshold: float | None, rejects_dir: str, id_column: str) -> pa.Table:
    scores = batch.column("judge_score").to_pylist()
    keep, rejects = [], []
    for i, (s, row) in enumerate(zip(scores, batch.to_pylist())):
        if s is not None and (threshold is None or s >= threshold):
            keep.append(i)
            continue
        if s is None:
            reason, detail = "judge_unscored", str(row.get("judge_reason") or "")
        else:
            reason, detail = "judge_below_threshold", f"score {s:.3g} < threshold {threshold:g}"
        rejects.append(
            reject("judge", reason, stage="judge", id=str(row.get(id_column)), detail=detail)
        )
    write_rejects(rejects_dir, rejects, "judge")
    return batch.take(pa.array(keep, pa.int64()))


def keep_scored(
    ds: ray.data.Dataset, threshold: float | None, rejects_dir: str, id_column: str = "id"
) -> ray.data.Dataset:
    """Rows scoring >= ``threshold`` go on; the rest are written to ``rejects_dir`` with reasons."""
    return ds.map_batches(
        _split,
        fn_kwargs={"threshold": threshold, "rejects_dir": rejects_dir, "id_column": id_column},
        batch_format="pyarrow",
        num_cpus=0.25,
    )


# -- a job's rows, judged once ----------------------------------------------------------------

# What a score depends on: rows scored under the same values of these are not scored again.
_SCORE_KEY_FIELDS = (
    "scorer",
    "rubric",
    "samples",
    "url",
    "reward_model",
    "prompt_field",
    "input_field",
    "response_field",
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "output",
    "max_reason_chars",
)
_SCORES = pa.schema({"id": pa.string(), **SCORE_COLUMNS})


def _judge_model_id(config: JudgeStageConfig, engine: Engine | None) -> str | None:
    """Who scores, by content: the in-process judge's engine model or reward model (the
    service at ``url`` is named by the url, part of the settings already)."""
    if config.url:
        return None
    if config.scorer == "reward":
        from synth_ray.models.resolve import resolve_model

        return resolve_model(config.reward_model).fingerprint
    return engine.model.fingerprint if engine is not None else None


def judge_rows(
    rows: list[dict[str, Any]],
    config: JudgeStageConfig,
    engine: Engine | None,
    cache_dir: str,
    rejects_dir: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge a job's final rows (each with an ``id``): returns (kept rows, counts).

    Scores are kept under ``cache_dir/<key of the scoring settings>/``: a rerun scores only rows
    without a score under the same settings (a new ``threshold`` re-splits without re-scoring;
    rows left unscored, e.g. by an unreachable service, are tried again). Kept rows carry
    ``extra.judge = {score, samples, model}``; the others become rejects
    (``judge_below_threshold`` / ``judge_unscored``), so every row is one or the other.
    """
    import ray.data

    from synth_ray.io.layout import read_parquet_dir
    from synth_ray.stages.records import write_table_dir

    settings = {f: getattr(config, f) for f in _SCORE_KEY_FIELDS}
    settings["judge_model_id"] = _judge_model_id(config, engine)
    key = stable_hash(json.dumps(settings, sort_keys=True))
    cache = fs_join(cache_dir, key)
    cached = read_parquet_dir(cache, ["id", *SCORE_COLUMNS])
    done = {
        r["id"]: r
        for r in (cached.to_pylist() if cached is not None else [])
        if r["judge_score"] is not None
    }
    todo = [r for r in rows if r["id"] not in done]
    if todo:
        fields = [f for f in (config.prompt_field, config.input_field, config.response_field) if f]
        table = pa.Table.from_pylist(
            [{"id": r["id"], **{f: str(r.get(f) or "") for f in fields}} for r in todo]
        )
        # Blocks of a few batches, not one block: tasks (service requests in flight, reward
        # actors) work on different blocks, so one block would be scored one batch at a time.
        step = max(config.batch_size, -(-len(todo) // 200))
        ds = ray.data.from_arrow([table.slice(i, step) for i in range(0, len(todo), step)])
        refs = (
            score_dataset(ds, config, engine).select_columns(["id", *SCORE_COLUMNS]).to_arrow_refs()
        )
        new = [r for t in ray.get(refs) for r in t.to_pylist()]
        missing = {r["id"] for r in todo} - {r["id"] for r in new}
        if missing:  # a lost row would be a silent drop: refuse
            raise RuntimeError(f"judge stage returned no score for {len(missing)} row(s)")
        done.update((r["id"], r) for r in new)
        write_table_dir(cache, pa.Table.from_pylist(list(done.values()), schema=_SCORES))
    scores = pa.Table.from_pylist([done[r["id"]] for r in rows], schema=_SCORES)
    drop_stage(rejects_dir, "judge")  # this split replaces an earlier run's (another threshold)
    kept_ids = set(_split(scores, config.threshold, rejects_dir, "id").column("id").to_pylist())
    kept = []
    for r in rows:
        if r["id"] in kept_ids:
            s = done[r["id"]]
            extra = r.get("extra") or {}
            extra = dict(json.loads(extra) if isinstance(extra, str) else extra)
            extra["judge"] = {
                "score": s["judge_score"],
                "samples": s["judge_samples"],
                "model": s["judge_model"],
            }
            kept.append({**r, "extra": extra})
    unscored = sum(done[r["id"]]["judge_score"] is None for r in rows)
    samples = [x for r in rows for x in done[r["id"]]["judge_samples"] or []]
    output = "service" if config.url else resolve_output(config.output, engine)
    counts = {
        "rows": len(rows),
        "scored_now": len(todo),
        "from_cache": len(rows) - len(todo),
        "kept": len(kept),
        "unscored": unscored,
        "below_threshold": len(rows) - len(kept) - unscored,
        # Parse rate over every row's judgements (cached ones included): parsed / samples.
        **(
            rubrics.parse_counts(samples, config.rubric, output) if config.scorer == "judge" else {}
        ),
    }
    return kept, counts
