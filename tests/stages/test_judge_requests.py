"""The judge stage's requests: each row judged under the rubric's constraint, a seeded judge
seeding every row apart (one seed for all rows would correlate their judgements)."""

from __future__ import annotations

import json

import pyarrow as pa

from synth_ray.stages.judge import JudgeStageConfig, _judge_requests

ROWS = [{"id": f"r{i}", "instruction": f"Task {i}", "input": "", "output": "x"} for i in range(4)]


def _seeds(seed):
    cfg = JudgeStageConfig(rubric="curation5", samples=2, seed=seed, output="regex").model_dump()
    out = _judge_requests(pa.Table.from_pylist(ROWS), cfg, "id")
    samplings = [json.loads(s) for s in out.column("sampling").to_pylist()]
    assert all(s["n"] == 2 and s.get("regex") for s in samplings)  # the regex constraint
    return [s["seed"] for s in samplings]


def test_seeded_rows_get_distinct_reproducible_seeds():
    seeds = _seeds(7)
    assert len(set(seeds)) == len(ROWS) and seeds == _seeds(7) and seeds != _seeds(8)


def test_unseeded_rows_stay_unseeded():
    assert _seeds(None) == [None] * len(ROWS)
