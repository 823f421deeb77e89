"""`synth-ray dedup`: kept + rejects = input, rejects carry the nearest kept text and score."""

import json

import pyarrow.parquet as pq
import pytest

from synth_ray.cli import main
from synth_ray.filters.novelty import rouge_l

ROWS = [
    {"instruction": "Write a poem about the sea.", "id": 1},
    {"instruction": "Write a poem about the sea!", "id": 2},  # same tokens: ROUGE-L 1.0
    {"instruction": "Translate this sentence into French.", "id": 3},
    {"instruction": "Write a short poem about the deep blue sea.", "id": 4},
    {"input": "no instruction field", "id": 5},
    {"instruction": "List three prime numbers.", "id": 6},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_dedup_cli(tmp_path, capsys, suffix):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / f"kept{suffix}"
    assert main(["dedup", str(src), str(out), "--field", "instruction"]) == 0
    # the summary is the last line (Ray may forward earlier workers' logs to stdout meanwhile)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    read = (
        (lambda p: pq.read_table(p).to_pylist())
        if suffix == ".parquet"
        else (lambda p: [json.loads(x) for x in p.read_text().splitlines()])
    )
    kept, rejects = read(out), read(tmp_path / f"kept.rejects{suffix}")
    assert summary == {"input": 6, "kept": len(kept), "rejected": len(rejects), "threshold": 0.7}
    assert sorted(r["id"] for r in kept + rejects) == [1, 2, 3, 4, 5, 6]
    by_id = {r["id"]: r for r in rejects}
    assert by_id[2]["nearest"] == ROWS[0]["instruction"] and by_id[2]["rouge_l"] == 1.0
    assert by_id[5]["reason"] == "missing_or_not_string:instruction"
    expected_4 = rouge_l(ROWS[3]["instruction"], ROWS[0]["instruction"])
    assert (4 in by_id) == (expected_4 > 0.7)
    for r in rejects:
        if r["reason"] == "rouge_l_above_threshold":
            assert r["rouge_l"] > 0.7 and r["rouge_l"] == rouge_l(r["instruction"], r["nearest"])
