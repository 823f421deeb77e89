"""Helpers for the instruction jobs' end-to-end tests (jobs/tiny/*.yaml on real vLLM)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from rouge_score import rouge_scorer

from synth_ray.io.layout import read_parquet_dir
from synth_ray.io.rejects import read_rejects
from synth_ray.runner import load_job_config, run_job

REPO = Path(__file__).resolve().parents[2]
DATASET_COLUMNS = {
    "id",
    "instruction",
    "input",
    "output",
    "method",
    "round",
    "seed_ids",
    "request_id",
    "model",
    "run_id",
    "extra",
}


def run_tiny(name: str, out: Path, *overrides: str) -> dict:
    config = load_job_config(
        str(REPO / f"jobs/tiny/{name}.yaml"), [f"output_dir={out}", *overrides]
    )
    return run_job(config)


def dataset(out: Path) -> list[dict]:
    rows = read_parquet_dir(str(out / "dataset")).to_pylist()
    for r in rows:
        r["extra"] = json.loads(r["extra"])
    return rows


def rejects(out: Path) -> list[dict]:
    return read_rejects(str(out / "rejects")).to_pylist()


def table(path: Path) -> list[dict]:
    return [r for f in sorted(path.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def assert_novel(texts: list[str], pool: list[str], threshold: float = 0.7) -> None:
    """The Self-Instruct property, checked with the reference package: every kept text has
    ROUGE-L <= threshold against every seed and every text kept before it."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    seen = list(pool)
    for t in texts:
        worst = max(scorer.score(t, s)["rougeL"].fmeasure for s in seen)
        assert worst <= threshold, (t, worst)
        seen.append(t)


def assert_rerun_generates_nothing(
    first: dict, again: dict, before: list[dict], after: list[dict]
) -> None:
    assert again["status"] == "succeeded"
    assert again["engine_starts"] == 0  # nothing pending: no engine was started
    for stage, c in again["counts"]["generation"].items():
        assert c["generated"] == 0, stage
        assert (
            c["skipped_done"] == c["requested"] == first["counts"]["generation"][stage]["requested"]
        )
    strip = lambda rows: sorted((r["id"], r["instruction"], r["input"], r["output"]) for r in rows)  # noqa: E731
    assert strip(after) == strip(before)
