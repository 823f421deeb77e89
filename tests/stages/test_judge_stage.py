"""The judge stage on Ray Data: through the scoring service over HTTP, and in-process (the
reward scorer on an actor pool; the rubric judge through the vllm engine)."""

from __future__ import annotations

import pytest

from synth_ray.io.rejects import read_rejects
from synth_ray.stages.judge import JudgeStageConfig, keep_scored, score_dataset

ROWS = [
    {"id": f"r{i}", "instruction": q, "input": inp, "output": a}
    for i, (q, inp, a) in enumerate(
        [
            ("What is the capital of France?", "", "Paris."),
            ("Summarise the text.", "The cat sat on the mat all day.", "A cat sat on a mat."),
            ("Name a primary colour.", "", "Red."),
            ("Translate to French.", "Good morning", "Bonjour."),
            ("Give a synonym of big.", "", "Large."),
            ("Is 7 prime?", "", "Yes, 7 is prime."),
        ]
    )
]


def _run(ds, cfg, tmp_path, engine=None):
    scored = score_dataset(ds, cfg, engine).materialize()
    rejects_dir = str(tmp_path / "rejects")
    kept = keep_scored(scored, cfg.threshold, rejects_dir).take_all()
    return scored.take_all(), kept, read_rejects(rejects_dir).to_pylist()


def _accounted(kept, rejects):
    assert sorted([r["id"] for r in kept] + [r["id"] for r in rejects]) == sorted(
        r["id"] for r in ROWS
    )


@pytest.mark.slow
@pytest.mark.serve
@pytest.mark.vllm
def test_judge_through_the_service(scoring_service, ray_local, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_RAY_SERVE_TOKEN", scoring_service.token)
    cfg = JudgeStageConfig(
        url=scoring_service.url,
        rubric="additive5",
        samples=2,
        batch_size=4,
        concurrency=2,
    )
    scored_ds = score_dataset(ray_local.data.from_items(ROWS), cfg).materialize()
    scored = scored_ds.take_all()
    assert len(scored) == len(ROWS)
    for r in scored:  # the service's guided judge: every row scored, two samples each
        assert r["judge_model"] == "tiny" and len(r["judge_samples"]) == 2
        assert 0 <= r["judge_score"] <= 5
    # Thresholds from the scores themselves, so both sides are exercised whatever the tiny judge
    # says: at the top score at least one row is kept (with its columns) and the rest rejected;
    # above it every row is rejected with its score and the threshold in the detail.
    scores = {r["id"]: r["judge_score"] for r in scored}
    top = max(scores.values())
    for threshold in (top, top + 0.5):
        rejects_dir = str(tmp_path / f"rejects-{threshold:g}")
        kept = keep_scored(scored_ds, threshold, rejects_dir).take_all()
        rejects = read_rejects(rejects_dir).to_pylist()
        _accounted(kept, rejects)
        assert sorted(r["id"] for r in kept) == sorted(
            k for k, v in scores.items() if v >= threshold
        )
        if threshold == top:
            assert kept and all({"instruction", "input", "output"} <= set(r) for r in kept)
        else:
            assert kept == [] and len(rejects) == len(ROWS)
        for x in rejects:
            assert x["reason"] == "judge_below_threshold", x
            assert x["detail"] == f"score {scores[x['id']]:.3g} < threshold {threshold:g}", x


@pytest.mark.slow
@pytest.mark.serve
@pytest.mark.vllm
def test_reward_through_the_service_matches_in_process(
    scoring_service, ray_local, tmp_path, monkeypatch
):
    monkeypatch.setenv("SYNTH_RAY_SERVE_TOKEN", scoring_service.token)
    ds = ray_local.data.from_items(ROWS)
    remote = JudgeStageConfig(
        url=scoring_service.url, scorer="reward", threshold=None, batch_size=4
    )
    local = JudgeStageConfig(scorer="reward", threshold=None, batch_size=4)
    a = {r["id"]: r["judge_score"] for r in score_dataset(ds, remote).take_all()}
    b = {r["id"]: r["judge_score"] for r in score_dataset(ds, local).take_all()}
    assert a.keys() == b.keys() == {r["id"] for r in ROWS}
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-4)
    # threshold at the median of the in-process scores: half kept, half rejected with the reason
    # (less a hair: padding in a different batch moves a score by ~1e-6)
    median = sorted(b.values())[len(b) // 2] - 1e-4
    _, kept, rejects = _run(ds, JudgeStageConfig(scorer="reward", threshold=median), tmp_path)
    _accounted(kept, rejects)
    assert len(kept) == 3 and {x["reason"] for x in rejects} == {"judge_below_threshold"}


@pytest.mark.slow
@pytest.mark.ray
def test_service_down_rows_become_rejects(ray_local, tmp_path):
    from tests.conftest import free_port

    cfg = JudgeStageConfig(url=f"http://127.0.0.1:{free_port()}", retries=1, batch_size=3)
    scored, kept, rejects = _run(ray_local.data.from_items(ROWS), cfg, tmp_path)
    assert kept == [] and len(rejects) == len(ROWS)
    assert all(
        x["reason"] == "judge_unscored" and "service unavailable" in x["detail"] for x in rejects
    )


ROW_COUNTS = ("rows", "scored_now", "from_cache", "kept", "unscored", "below_threshold")


@pytest.mark.slow
@pytest.mark.ray
def test_job_rows_unscored_are_tried_again_on_the_rerun(ray_local, tmp_path):
    """``judge_rows`` (the jobs' judge: block): rows the service could not score become rejects,
    are not taken from the stored scores on the rerun, and are scored again then."""
    from synth_ray.stages.judge import judge_rows
    from tests.conftest import free_port

    cfg = JudgeStageConfig(url=f"http://127.0.0.1:{free_port()}", retries=0, batch_size=2)
    rows = [dict(r, extra={"k": 1}) for r in ROWS]
    for _ in range(2):
        kept, counts = judge_rows(
            rows, cfg, None, str(tmp_path / "judge"), str(tmp_path / "rejects")
        )
        assert kept == [] and {k: counts[k] for k in ROW_COUNTS} == {
            "rows": 6,
            "scored_now": 6,
            "from_cache": 0,
            "kept": 0,
            "unscored": 6,
            "below_threshold": 0,
        }
        assert counts["output"] == "service" and counts["parsed"] == 0
        rejects = read_rejects(str(tmp_path / "rejects")).to_pylist()
        assert sorted(r["id"] for r in rejects) == [r["id"] for r in ROWS]  # once each, not twice
        assert {r["reason"] for r in rejects} == {"judge_unscored"}


@pytest.mark.slow
@pytest.mark.serve
@pytest.mark.vllm
def test_service_refuses_without_token(scoring_service, ray_local, tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_RAY_SERVE_TOKEN", raising=False)
    cfg = JudgeStageConfig(url=scoring_service.url, scorer="reward", retries=0)
    _, kept, rejects = _run(ray_local.data.from_items(ROWS), cfg, tmp_path)
    _accounted(kept, rejects)  # every row rejected, none lost
    assert kept == [] and all("HTTP 401" in x["detail"] for x in rejects)


EIGHT = ROWS + [
    {"id": "r6", "instruction": "Spell 'cat' backwards.", "input": "", "output": "tac"},
    {"id": "r7", "instruction": "What is 2+2?", "input": "", "output": "The sky is blue."},
]


@pytest.mark.slow
@pytest.mark.vllm
def test_judge_in_process_through_the_vllm_engine(ray_local, tiny_model, tmp_path):
    """The default output (regex on the vllm engine): the random tiny model, which never writes
    "Score: N" by itself, returns a score in range for every sample of all 8 items."""
    from synth_ray.engines import build_engine
    from synth_ray.models.resolve import resolve_model
    from synth_ray.stages.judge import judge_rows

    engine = build_engine({"type": "vllm", "max_model_len": 2048}, resolve_model("tiny"))
    cfg = JudgeStageConfig(rubric="curation5", samples=2, max_tokens=32, seed=1, threshold=3)
    try:
        kept, counts = judge_rows(
            EIGHT, cfg, engine, str(tmp_path / "judge"), str(tmp_path / "rejects")
        )
    finally:
        engine.close()
    assert counts["output"] == "regex" and counts["rubric"] == "curation5"
    assert (counts["samples"], counts["parsed"], counts["parse_rate"]) == (16, 16, 1.0)
    assert counts["unscored"] == 0 and counts["kept"] + counts["below_threshold"] == 8
    rejects = read_rejects(str(tmp_path / "rejects")).to_pylist()
    assert {x["reason"] for x in rejects} <= {"judge_below_threshold"}
    for r in kept:
        assert 3 <= r["extra"]["judge"]["score"] <= 5
        assert len(r["extra"]["judge"]["samples"]) == 2 and r["extra"]["judge"]["model"] == "tiny"
