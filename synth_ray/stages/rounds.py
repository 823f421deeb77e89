"""Rounds: generate, filter, repeat until a target count (Self-Instruct, Alpaca, Unnatural).

Each round builds its prompts from what earlier rounds kept (a seeded ``random.Random`` per
round, so the same history gives the same prompts), sends them through the engine in parallel
(one Ray Dataset per round, on the run's long-lived engine pool; through the model's chat
template when the run's ``prompt_format`` resolved to chat), and hands the completions, in
request-id order, to the method's ``accept`` which parses, filters and keeps. Completions are
stored per round under ``data/<stage>/r<round>/``: a rerun replays finished rounds from disk
(no engine call, no engine start) and goes on where the last run stopped.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synth_ray.io.rejects import write_rejects
from synth_ray.stages.generate import GenerationStats, generate_rows
from synth_ray.stages.prompt import as_chat_request
from synth_ray.stages.records import request_id

if TYPE_CHECKING:
    from synth_ray.engines import Engine
    from synth_ray.job import JobContext

log = logging.getLogger(__name__)


class GenerationCounters:
    """Generation counts per stage and tokens, summed into the run record."""

    def __init__(self, rec):
        self.rec = rec
        rec.counts.setdefault("generation", {})

    def add(self, stage: str, s: GenerationStats) -> None:
        c = self.rec.counts["generation"].setdefault(
            stage, {"requested": 0, "skipped_done": 0, "generated": 0, "generation_errors": 0}
        )
        c["requested"] += s.requested
        c["skipped_done"] += s.skipped_done
        c["generated"] += s.generated
        c["generation_errors"] += s.errors
        self.rec.tokens["prompt"] += s.prompt_tokens
        self.rec.tokens["completion"] += s.completion_tokens


@dataclass(frozen=True)
class StageIO:
    """What a generating stage uses, passed in so that one job can hold several models: the
    engine it generates with, the folder its rows go under (``<root>/data/<stage>/...``), the
    run id stamped on them, the counters (and timers) of the run record, the rejects folder."""

    engine: Engine
    root: str
    run_id: str
    counters: GenerationCounters
    rejects: str
    prompt_format: str = "raw"  # raw | chat: how the job sends prompts (apply_prompt_format)

    @classmethod
    def of(cls, ctx: JobContext, engine: Engine | None = None, root: str | None = None):
        """The job's own engine and folders (``engine``/``root`` override them)."""
        counters = GenerationCounters(ctx.record)
        return cls(
            engine or ctx.engine,
            root or ctx.layout.root,
            ctx.run_id,
            counters,
            ctx.layout.rejects,
            ctx.prompt_format,
        )

    @property
    def model_id(self) -> str:
        """The content fingerprint of the model this stage generates with (for request ids)."""
        return self.engine.model.fingerprint

    def sub(self, path: str) -> str:
        from synth_ray.io import fs

        return fs.join(self.root, path)


def generate_stage(
    io: StageIO, stage: str, requests: list[dict], subdir: str | None = None
) -> dict[str, list[dict]]:
    """Generate ``requests`` under ``<root>/data/<stage>[/<subdir>]``.

    Returns request id -> its generation rows (one per sample, in sample order).
    """
    path = f"data/{stage}" + (f"/{subdir}" if subdir else "")
    kind, original = "prompt", {}
    if io.prompt_format == "chat":  # the same prompts through the model's chat template
        chat = [as_chat_request(r) for r in requests]
        original = {c["id"]: r["id"] for c, r in zip(chat, requests)}
        requests, kind = chat, "messages"
    with io.counters.rec.stage("generate"):
        out, stats = generate_rows(io.engine, requests, io.sub(path), io.run_id, kind)
    io.counters.add(stage, stats)
    by_req: dict[str, list[dict]] = {}
    for r in sorted(out, key=lambda r: (r["request_id"], r["sample_index"])):
        rid = original.get(r["request_id"], r["request_id"])  # the method's own request id
        by_req.setdefault(rid, []).append({**r, "request_id": rid})
    return by_req


def generate_per_item(
    io: StageIO, stage: str, prompts: dict[str, str], sampling_of
) -> dict[str, list[dict]]:
    """One request per item (``prompts``: item key -> prompt; ``sampling_of(key)`` -> sampling
    JSON); returns item key -> its generation rows (empty list when none came back)."""
    reqs = {}
    for key, prompt in prompts.items():
        sampling = sampling_of(key)
        reqs[key] = {
            "id": request_id(stage, prompt, sampling, io.model_id),
            "prompt": prompt,
            "sampling": sampling,
        }
    by_req = generate_stage(io, stage, list(reqs.values()))
    return {key: by_req.get(r["id"], []) for key, r in reqs.items()}


def run_rounds(
    io: StageIO,
    *,
    stage: str,
    target: int,
    have: Callable[[], int],
    make_requests: Callable[[int, random.Random], list[dict]],
    accept: Callable[[int, list[dict], list[dict]], tuple[int, list[dict]]],
    seed: int,
    max_rounds: int,
    patience: int,
) -> None:
    """Run rounds until ``have() >= target``, ``patience`` dry rounds, or ``max_rounds``.

    ``make_requests(round, rng)`` -> request rows; ``accept(round, requests, generations)`` ->
    (items kept, reject rows). Records ``counts[stage]`` (rounds, stop reason) in run.json.
    """
    from tqdm.auto import tqdm

    rec = io.counters.rec
    info = rec.counts.setdefault(stage, {})
    dry = rnd = 0
    bar = tqdm(
        total=target,
        initial=min(have(), target),
        desc=f"{stage} (kept/target)",
        unit="item",
        dynamic_ncols=True,
    )
    for rnd in range(max_rounds):
        if have() >= target or dry >= patience:
            break
        requests = make_requests(rnd, random.Random(f"{seed}:{rnd}"))
        by_req = generate_stage(io, stage, requests, f"r{rnd:05d}")
        gens = [g for r in requests for g in by_req.get(r["id"], [])]
        with rec.stage("filter"):
            added, rejects = accept(rnd, requests, gens)
        write_rejects(io.rejects, rejects, f"{stage}-r{rnd:05d}")
        dry = 0 if added else dry + 1
        info["rounds"] = rnd + 1
        bar.update(min(have(), target) - bar.n)
        bar.set_postfix(round=rnd, added=added, dry_rounds=dry)
        log.info("%s round %d: +%d (%d/%d)", stage, rnd, added, have(), target)
    bar.close()
    if have() < target:
        info["stopped_early"] = (
            f"{have()} of {target}: nothing kept in {patience} rounds in a row"
            if dry >= patience
            else f"max_rounds ({max_rounds}) reached"
        )
