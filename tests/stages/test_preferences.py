"""The preference-row writer and its export in TRL's preference format."""

from __future__ import annotations

import json

import pytest

from synth_ray.export import export
from synth_ray.io.layout import read_parquet_dir
from synth_ray.stages.records import PREFERENCE_SCHEMA, write_preferences

ROWS = [
    {
        "prompt": "Name a fruit.",
        "chosen": "An apple.",
        "rejected": "Blue.",
        "score_chosen": 4.0,
        "score_rejected": 1.0,
        "model_chosen": "fp-1",
        "model_rejected": "fp-1",
        "method": "self_rewarding",
        "iteration": 1,
        "run_id": "r",
        "extra": {"samples": [4, 4]},
    },
    {"prompt": "2+2?", "chosen": "4", "rejected": "5", "method": "spin", "iteration": 0},
]


def test_written_with_ids_lineage_and_exported(tmp_path):
    assert write_preferences(str(tmp_path / "preferences"), ROWS) == 2
    table = read_parquet_dir(str(tmp_path / "preferences"))
    assert table.schema.equals(PREFERENCE_SCHEMA)
    rows = {r["prompt"]: r for r in table.to_pylist()}
    assert rows["Name a fruit."]["id"].startswith("self_rewarding-")
    assert json.loads(rows["Name a fruit."]["extra"]) == {"samples": [4, 4]}
    counts = export(str(tmp_path), str(tmp_path / "p.jsonl"), "preferences")
    assert counts["written"] == 2
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert {tuple(sorted(x)) for x in lines} == {
        ("chosen", "prompt", "rejected"),
        ("chosen", "prompt", "rejected", "score_chosen", "score_rejected"),
    }


def test_rows_without_texts_refused(tmp_path):
    with pytest.raises(ValueError, match="'rejected'"):
        write_preferences(str(tmp_path), [{"prompt": "p", "chosen": "c", "rejected": " "}])


def test_export_loads_in_datasets_as_trl_reads_it(tmp_path):
    datasets = pytest.importorskip("datasets")
    write_preferences(str(tmp_path / "preferences"), ROWS)
    export(str(tmp_path), str(tmp_path / "p.jsonl"), "preferences")
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "p.jsonl"), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) == 2


def test_export_without_preferences(tmp_path):
    with pytest.raises(FileNotFoundError, match="no preference rows"):
        export(str(tmp_path), str(tmp_path / "p.jsonl"), "preferences")
