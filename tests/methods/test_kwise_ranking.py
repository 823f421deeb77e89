"""Starling-style k-wise rankings end to end on the tiny model through real vLLM
(jobs/tiny/kwise_ranking.yaml): K responses from two named responders, ranked by the constrained
LLM judge over shuffled orders (each judgement's permutation recorded and mapped back), ranked
rows and the pairs derived from them; a rerun generates nothing; the ranked rows train the
Plackett-Luce reward model on Ray Train."""

from __future__ import annotations

import json

import pytest

from synth_ray.io.layout import read_parquet_dir
from synth_ray.runner import load_job_config, run_job
from synth_ray.train.data import read_training_rows_local
from tests.methods.jobs import run_tiny

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def first_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("kwise")
    return out, run_tiny("kwise_ranking", out)


def test_ranked_rows_with_their_permutations(first_run):
    out, rec = first_run
    assert rec["status"] == "succeeded" and rec["engine_starts"] == 1
    c = rec["counts"]
    assert c["prompts"] == 3 and c["responses"]["requested"] == 12
    assert c["judge"]["judgements"] == 6 and c["judge"]["parse_rate"] == 1.0
    assert c["rankings"] + c["judge"]["prompts_unranked"] == 3 and c["rankings"] > 0
    rows = read_parquet_dir(str(out / "rankings")).to_pylist()
    assert len(rows) == c["rankings"]
    for r in rows:
        k = len(r["responses"])
        assert 2 <= k <= 4 and len(r["models"]) == len(r["mean_ranks"]) == k
        assert set(r["models"]) <= {"tiny-hot", "tiny-cool"}
        assert r["mean_ranks"] == sorted(r["mean_ranks"])  # best first
        extra = json.loads(r["extra"])
        assert len(extra["judgements"]) == 2
        # each judgement's order, read through the shuffle it was shown, gives its ranks, and
        # the rows' mean ranks are their average (position bias handled by the bookkeeping)
        per_original = []
        for j in extra["judgements"]:
            assert sorted(j["shown"]) == list(range(k))
            ranks = [0.0] * k
            for place, label in enumerate(j["order"], 1):
                ranks[j["shown"][ord(label) - ord("A")]] = float(place)
            assert ranks == j["ranks"]
            per_original.append(ranks)
        means = [sum(x) / len(x) for x in zip(*per_original)]
        assert [means[i] for i in extra["original_index"]] == r["mean_ranks"]
    # pairs derived from the rankings: the better-ranked response chosen
    prefs = read_parquet_dir(str(out / "preferences")).to_pylist()
    assert len(prefs) == c["pairs"]["rows"] > 0
    ranked = {r["prompt"]: r for r in rows}
    for p in prefs:
        r = ranked[p["prompt"]]
        rank = dict(zip(r["responses"], r["mean_ranks"]))
        assert rank[p["chosen"]] < rank[p["rejected"]]
    # the trainers' readers take both
    kw, bad = read_training_rows_local(str(out / "rankings"), "kwise")
    assert len(kw) == len(rows) and not bad
    pw, bad = read_training_rows_local(str(out / "preferences"), "pairwise")
    assert len(pw) == len(prefs) and not bad


def test_rerun_generates_nothing(first_run):
    out, rec = first_run
    before = read_parquet_dir(str(out / "rankings")).to_pylist()
    again = run_tiny("kwise_ranking", out)
    assert again["status"] == "succeeded" and again["engine_starts"] == 0
    for stage, c in again["counts"]["generation"].items():
        assert c["generated"] == 0 and c["skipped_done"] == c["requested"], stage
    after = read_parquet_dir(str(out / "rankings")).to_pylist()
    strip = lambda rows: sorted((r["prompt"], tuple(r["responses"])) for r in rows)  # noqa: E731
    assert strip(after) == strip(before)


@pytest.mark.train
def test_rankings_train_the_plackett_luce_reward_model(first_run, tmp_path):
    out, _ = first_run
    overrides = [
        f"input={out / 'rankings'}",
        f"output_dir={tmp_path / 'rm'}",
        "loss=kwise",
        "model=tiny",
        "per_device_batch_size=4",
        "max_steps=2",
        "logging_steps=1",
        "checkpoint.save_steps=1000",
        "scaling.num_workers=1",
    ]
    rec = run_job(load_job_config(str(REPO / "jobs/reward.yaml"), overrides))
    assert rec["status"] == "succeeded"
    t = rec["counts"]["training"]
    assert (
        t["rows_trained"] == len(read_parquet_dir(str(out / "rankings"))) and t["global_step"] == 2
    )
