"""The rounds driver (``synth_ray.stages.rounds.run_rounds``) on a scripted engine: it stops at
the target, after ``patience`` dry rounds, or at ``max_rounds``, records why, writes each round's
rejects, and a rerun replays finished rounds from disk with no engine call.

The engine is not under test: ``tests/scripted.py`` answers from a function of the prompt
through a real Ray Data pipeline (the session's ``ray_local``)."""

from __future__ import annotations

import pytest

from synth_ray.engines.base import SamplingConfig
from synth_ray.io.rejects import read_rejects
from synth_ray.stages.records import request_id
from synth_ray.stages.rounds import StageIO, run_rounds
from tests.scripted import ScriptedEngine, job_context

STAGE = "items"
SAMPLING = SamplingConfig(max_tokens=8).to_json()
PER_ROUND = 3


def echo(prompt: str) -> str:
    return prompt.upper()


def _run(ctx, kept: list[str], *, target, keep_per_round, max_rounds=10, patience=2):
    """Rounds of PER_ROUND prompts (built from the round's seeded rng); ``accept`` keeps the
    first ``keep_per_round`` completions not kept yet and rejects the others."""
    io = StageIO.of(ctx)

    def make_requests(rnd, rng):
        prompts = [f"round {rnd} item {k} draw {rng.randint(0, 999)}" for k in range(PER_ROUND)]
        return [
            {"id": request_id(STAGE, p, SAMPLING, io.model_id), "prompt": p, "sampling": SAMPLING}
            for p in prompts
        ]

    def accept(rnd, requests, gens):
        assert [g["request_id"] for g in gens] == [r["id"] for r in requests]  # request order
        added, rejects = 0, []
        for g in gens:
            if added < keep_per_round and g["completion"] not in kept:
                kept.append(g["completion"])
                added += 1
            else:
                rejects.append(
                    {
                        "source": "test",
                        "line": None,
                        "id": g["id"],
                        "stage": STAGE,
                        "reason": "not_needed",
                        "detail": f"round {rnd}",
                    }
                )
        return added, rejects

    run_rounds(
        io,
        stage=STAGE,
        target=target,
        have=lambda: len(kept),
        make_requests=make_requests,
        accept=accept,
        seed=7,
        max_rounds=max_rounds,
        patience=patience,
    )
    return ctx.record.counts


@pytest.mark.slow
@pytest.mark.ray
def test_stops_at_target_then_replays_without_the_engine(ray_local, tmp_path):
    engine, kept = ScriptedEngine(echo), []
    ctx = job_context(engine, tmp_path)
    counts = _run(ctx, kept, target=4, keep_per_round=2)
    assert len(kept) == 4 and counts[STAGE] == {"rounds": 2}  # no stopped_early: target met
    assert engine.calls == 2 and engine.rows_sent == 2 * PER_ROUND
    gen = counts["generation"][STAGE]
    assert gen == {"requested": 6, "skipped_done": 0, "generated": 6, "generation_errors": 0}
    assert kept[0].startswith("ROUND 0 ITEM 0 DRAW ")
    rejects = read_rejects(ctx.layout.rejects).to_pylist()
    assert sorted(r["detail"] for r in rejects) == ["round 0", "round 1"]

    # A rerun with the same history: the same prompts (seeded per round), read back from
    # data/items/r0000x/; the engine is never called.
    engine2, kept2 = ScriptedEngine(echo), []
    counts2 = _run(job_context(engine2, tmp_path), kept2, target=4, keep_per_round=2)
    assert kept2 == kept and engine2.calls == 0
    assert counts2["generation"][STAGE] == {
        "requested": 6,
        "skipped_done": 6,
        "generated": 0,
        "generation_errors": 0,
    }
    # A higher target: the two finished rounds replayed, one new round generated.
    engine3, kept3 = ScriptedEngine(echo), []
    counts3 = _run(job_context(engine3, tmp_path), kept3, target=6, keep_per_round=2)
    assert kept3[:4] == kept and len(kept3) == 6 and counts3[STAGE] == {"rounds": 3}
    assert engine3.calls == 1 and engine3.rows_sent == PER_ROUND
    assert counts3["generation"][STAGE]["skipped_done"] == 6


@pytest.mark.slow
@pytest.mark.ray
def test_patience_stops_after_dry_rounds(ray_local, tmp_path):
    engine, kept = ScriptedEngine(echo), []
    counts = _run(job_context(engine, tmp_path), kept, target=5, keep_per_round=0, patience=2)
    assert kept == [] and counts[STAGE]["rounds"] == 2 and engine.calls == 2
    assert counts[STAGE]["stopped_early"] == "0 of 5: nothing kept in 2 rounds in a row"


@pytest.mark.slow
@pytest.mark.ray
def test_max_rounds_caps_the_run(ray_local, tmp_path):
    engine, kept = ScriptedEngine(echo), []
    counts = _run(job_context(engine, tmp_path), kept, target=100, keep_per_round=1, max_rounds=2)
    assert len(kept) == 2 and counts[STAGE]["rounds"] == 2 and engine.calls == 2
    assert counts[STAGE]["stopped_early"] == "max_rounds (2) reached"


def test_target_already_met_runs_no_round(tmp_path):
    """No Ray needed: the driver checks the target before building any request."""
    engine, kept = ScriptedEngine(echo), ["x", "y"]
    counts = _run(job_context(engine, tmp_path), kept, target=2, keep_per_round=1)
    assert engine.calls == 0 and counts[STAGE] == {} and counts["generation"] == {}
