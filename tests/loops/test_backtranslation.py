"""Instruction Backtranslation end to end on the tiny model (real Ray, vLLM, Ray Train): the
job killed between stages and in the middle of a stage, then rerun to the end of its two
iterations: nothing lost, nothing duplicated, no finished stage redone, and the finished output
the same as an uninterrupted run's in every count the job promises (checked against the input
and the manifests rather than against a second, uninterrupted run, which would double the
test's 4 minutes of CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth_ray.io.layout import read_parquet_dir

from .loopproc import REPO, cli, finish, kill_when, lineage, manifest, stage

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.train]

JOB = REPO / "jobs" / "tiny" / "backtranslation.yaml"


def _rows(path: Path, cols=("id",)) -> list[tuple]:
    t = read_parquet_dir(str(path))
    return sorted(tuple(r[c] for c in cols) for r in t.to_pylist()) if t is not None else []


def _check_two_iterations(out: Path) -> None:
    """What a finished two-iteration run promises, whether or not it was killed on the way."""
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "succeeded"
    m0, m1 = manifest(out, 0), manifest(out, 1)
    for m in (m0, m1):
        assert m["status"] == "done"
        assert all(s["status"] == "done" for s in m["stages"].values())
        probe = m["probe"]
        assert probe["ok"] and probe["tensors_compared"] >= 3
        assert probe["model"] == m["model_out"]["fingerprint"]
        # the probe tells the new model from its parent exactly when their contents differ (a
        # random judge may keep no augmented pair: then M_{t+1} trains on M_t's data, the same)
        new = m["model_out"]["fingerprint"] != m["parent_model"]["fingerprint"]
        assert probe["differs_from_parent"] == new
    assert m1["parent_model"]["fingerprint"] == m0["model_out"]["fingerprint"]
    assert list(m0["stages"]) == [
        "seed_forward",
        "seed_backward",
        "segments",
        "augment",
        "curate",
        "select",
        "train",
        "swap",
    ]
    assert list(m1["stages"]) == ["curate", "select", "train", "swap"]
    # every segment ends kept (an augmented pair) or rejected with its reason
    seg = m0["stages"]["segments"]["result"]
    aug = m0["stages"]["augment"]["result"]
    assert seg["segments"] == seg["kept"] + sum(seg["rejected"].values())
    assert seg["kept"] == aug["pairs"] + sum(aug["rejected"].values()) == 12
    # per iteration, every augmented pair is scored into A_k or rejected with its reason
    for t, m in enumerate((m0, m1)):
        cur = m["stages"]["curate"]["result"]
        assert cur["pairs"] == aug["pairs"] == cur["scored"] + cur["unscored"]
        assert sum(cur["histogram"].values()) == cur["scored"]
        rejects = _rows(out / f"iter_{t}" / "rejects", ("id",))
        assert len(rejects) == cur["unscored"] + (cur["scored"] - m["metrics"]["A4"])
        assert m["metrics"]["train_rows"] == 16 + m["metrics"]["A4"]
        assert m["metrics"]["parse_rate"] is not None
        train = m["stages"]["train"]["result"]["metrics"]  # the training input's rejects too
        assert (train["rejected"], train["rejects_by_reason"]) == (0, {})
    assert record["counts"]["iterations"][1]["A4"] == m1["metrics"]["A4"]
    lines = lineage(out)
    assert len(lines) == 2 and all("probe: ok" in ln for ln in lines)
    assert m0["model_out"]["fingerprint"] in lines[0] and m1["model_out"]["fingerprint"] in lines[1]


def test_killed_between_and_inside_stages_resumes(tmp_path):
    out = tmp_path / "killed"
    # 1: killed between stages (iteration 0's curation has just finished)
    kill_when(cli(JOB, out), lambda: stage(out, 0, "curate") == "done")
    first = manifest(out, 0)["stages"]
    # 2: killed in the middle of a stage: iteration 1's training, once Ray Train runs
    proc = cli(JOB, out)
    kill_when(
        proc,
        lambda: (
            stage(out, 1, "train") == "running" and (out / "iter_1" / "m_next" / "train").exists()
        ),
    )
    # 3: runs to the end
    finish(cli(JOB, out))
    _check_two_iterations(out)
    m0, m1 = manifest(out, 0), manifest(out, 1)
    # no finished stage redone: stages done by run 1 kept their run id and a single attempt
    assert first["curate"]["status"] == "done"
    for name, s in first.items():
        if s["status"] == "done":
            assert m0["stages"][name]["run_id"] == s["run_id"]
            assert m0["stages"][name]["attempts"] == 1
    assert m1["stages"]["train"]["attempts"] == 2
    assert len(m0["run_ids"]) == len(m1["run_ids"]) == 3  # every run opens every iteration
    # nothing lost, nothing duplicated: 12 segments, each augmented and curated once per
    # iteration under the same id, and each iteration's curation over the same pairs
    segs = _rows(out / "iter_0" / "segments", ("segment_id",))
    assert len(segs) == len(set(segs)) == 12
    augmented = _rows(out / "iter_0" / "augmented", ("id",))
    assert len(augmented) == len(set(augmented)) == 12
    for sub in ("iter_0/curated", "iter_1/curated"):
        assert _rows(out / sub, ("id",)) == augmented, sub
    gen = _rows(out / "iter_0" / "data" / "augment", ("id", "completion"))
    assert len(gen) == len({g[0] for g in gen})  # the augment stage wrote each id once
    for t, m in enumerate((m0, m1)):  # each training set: the 16 seeds and A4, no row twice
        origins = [o for (o,) in _rows(out / f"iter_{t}" / "train_data", ("origin",))]
        assert len(origins) == 16 + m["metrics"]["A4"], t
