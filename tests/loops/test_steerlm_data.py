"""SteerLM's ACSFT rows and the bootstrapping step's requested combinations (no engine)."""

from __future__ import annotations

from synth_ray.loops.steerlm import data as D

NAMES = ["quality", "toxicity", "humor"]


def test_acsft_rows_carry_the_values_and_reject_what_cannot_train():
    rows = [
        {"id": "a", "prompt": "Q?", "response": "A.", "attributes": {"quality": 3.6, "humor": 1}},
        {"id": "b", "prompt": "Q?", "response": " ", "attributes": {"quality": 4}},
        {"id": "c", "prompt": "", "response": "A.", "attributes": {"quality": 4}},
        {"id": "d", "prompt": "Q?", "response": "A.", "attributes": {"length": 2}},
    ]
    out, bad = D.acsft_rows(rows, NAMES)
    assert out == [
        {
            "messages": [
                {"role": "system", "content": "Attributes: quality:4,humor:1"},
                {"role": "user", "content": "Q?"},
                {"role": "assistant", "content": "A."},
            ],
            "origin": "annotated",
        }
    ]
    assert [(r["id"], r["reason"]) for r in bad] == [
        ("b", "empty_response"),
        ("c", "empty_prompt"),
        ("d", "unannotated"),
    ]


def test_requested_combinations_are_those_of_top_quality_rows_by_frequency():
    annotated = [
        {"quality": 3.7, "toxicity": 0.2, "humor": 1.4},  # quality rounds to 4
        {"quality": 4.2, "toxicity": 0.0, "humor": 1.0},  # the same combination
        {"quality": 4.0, "toxicity": 0.0, "humor": 3.0},
        {"quality": 2.0, "toxicity": 0.0, "humor": 0.0},  # not top quality
        {"toxicity": 0.0},  # no quality
    ]
    assert D.requested_combinations(annotated, NAMES) == [
        {"quality": 4, "toxicity": 0, "humor": 1},
        {"quality": 4, "toxicity": 0, "humor": 3},
    ]
    assert D.requested_combinations([{"quality": 1.0}], NAMES) == []
