"""Self-Rewarding end to end on the tiny model (real Ray, vLLM, Ray Train), 2 iterations, in one
test that also kills the job twice: inside a stage (M1's training, once Ray Train runs) and
between stages (iteration 0's pairs just selected), then runs it to the end. Checked: every
stage done once (nothing finished is redone), every generated id written once, every prompt
accounted for (a pair or a reject with its reason), DPO of M_t with M_t as the reference, the
swap probe, the per-iteration figures in the manifests, run.json and ``synth-ray lineage``, and
preference rows that export and read as DPO input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth_ray.io.layout import read_parquet_dir
from synth_ray.io.rejects import read_rejects

from .loopproc import REPO, cli, finish, kill_when, lineage, manifest, stage

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.train]

JOB = REPO / "jobs" / "tiny" / "self_rewarding.yaml"
STAGES = ["instructions", "responses", "judge", "select", "train", "swap", "evaluate"]


def _ids(path: Path, col: str = "id") -> list[str]:
    t = read_parquet_dir(str(path))
    return [] if t is None else t.column(col).to_pylist()


def test_two_iterations_killed_inside_and_between_stages_resume(tmp_path):
    out = tmp_path / "run"
    # 1: killed inside a stage: M1's SFT, once Ray Train runs
    kill_when(
        cli(JOB, out),
        lambda: stage(out, 0, "sft_m1") == "running" and (out / "iter_0" / "m1" / "train").exists(),
    )
    snaps = [manifest(out, 0)["stages"]]
    # 2: killed between stages: iteration 0's pairs just selected, before its DPO (the next
    # stage may have begun by the time the kill lands: it then counts as killed inside)
    kill_when(cli(JOB, out), lambda: stage(out, 0, "select") == "done")
    snaps.append(manifest(out, 0)["stages"])
    # 3: runs to the end
    finish(cli(JOB, out))

    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "succeeded"
    m0, m1 = manifest(out, 0), manifest(out, 1)
    assert list(m0["stages"]) == ["sft_m1", *STAGES] and list(m1["stages"]) == STAGES
    assert len(m0["run_ids"]) == len(m1["run_ids"]) == 3  # every run opens every iteration
    assert snaps[0]["sft_m1"]["status"] == "running" and snaps[1]["select"]["status"] == "done"

    # nothing finished was redone: a stage ran once more for each kill that found it running,
    # and a stage done by run 2 kept run 2's id
    for m in (m0, m1):
        assert all(s["status"] == "done" for s in m["stages"].values())
    for name, s in m0["stages"].items():
        killed = sum((snap.get(name) or {}).get("status") == "running" for snap in snaps)
        assert s["attempts"] == 1 + killed, name
        if (snaps[1].get(name) or {}).get("status") == "done":
            assert s["run_id"] == snaps[1][name]["run_id"], name
    assert m0["stages"]["sft_m1"]["attempts"] == 2
    assert all(s["attempts"] == 1 for s in m1["stages"].values())
    for name in ("instructions", "responses", "judge", "select"):
        assert m0["stages"][name]["run_id"] == m0["run_ids"][1]

    sft = m0["stages"]["sft_m1"]["result"]
    assert (sft["ift"], sft["eft"], sft["heldout"]) == (16, 8, 2)
    assert m1["parent_model"]["fingerprint"] == m0["model_out"]["fingerprint"]
    for t, m in enumerate((m0, m1)):
        d = out / f"iter_{t}"
        st = {k: v["result"] for k, v in m["stages"].items()}
        # every requested prompt kept or rejected with its reason; each id generated once
        ins = st["instructions"]
        assert ins["requested"] == 6 == ins["kept"] + sum(ins["rejected"].values())
        gen = _ids(d / "data" / "instructions")
        assert len(gen) == len(set(gen)) == 6
        resp = _ids(d / "data" / "responses")
        assert len(resp) == len(set(resp)) == 4 * ins["kept"] + 2  # + M_t's held-out answers
        assert st["responses"]["candidates"] == 4 * ins["kept"]
        # every candidate judged (3 samples each, constrained: all parse) or rejected
        jud = st["judge"]
        assert jud["scored"] + jud["unscored"] == jud["candidates"] == 4 * ins["kept"]
        assert jud["samples"] == 3 * jud["candidates"] and jud["parse_rate"] == 1.0
        assert sum(jud["histogram"].values()) == jud["scored"]
        # every prompt a pair or a reject with its reason (ties, fewer than 2 scores)
        sel = st["select"]
        assert sel["prompts"] == ins["kept"] == sel["pairs"] + sum(sel["rejected"].values())
        assert set(sel["rejected"]) <= {"scores_tied", "fewer_than_2_scores", "empty_response"}
        rejects = [
            r for r in read_rejects(str(d / "rejects")).to_pylist() if r["stage"] == "select"
        ]
        assert len(rejects) == sum(sel["rejected"].values())
        prefs = read_parquet_dir(str(d / "preferences")).to_pylist()
        assert len(prefs) == sel["pairs"] > 0
        for p in prefs:
            assert p["score_chosen"] > p["score_rejected"] and p["iteration"] == t
            assert p["model_chosen"] == m["parent_model"]["fingerprint"]
        # DPO of M_t with M_t as the reference; the swap serves M_{t+1}, verified
        tr = st["train"]
        assert tr["kind"] == "dpo" and tr["rows"] == sel["pairs"]
        assert tr["reference"]["fingerprint"] == m["parent_model"]["fingerprint"]
        assert tr["base"]["fingerprint"] == m["parent_model"]["fingerprint"]
        assert m["settings"]["dpo_reference"]["fingerprint"] == m["parent_model"]["fingerprint"]
        assert m["probe"]["ok"] and m["probe"]["model"] == m["model_out"]["fingerprint"]
        assert m["probe"]["differs_from_parent"] is True
        # the figures
        mt = m["metrics"]
        assert mt["pairs"] == sel["pairs"] and mt["judge_parse_rate"] == 1.0
        assert mt["score_histogram"] == jud["histogram"]
        assert isinstance(mt["dpo_reward_margin"], float)
        assert 0.0 <= mt["dpo_reward_accuracy"] <= 1.0
        ev = st["evaluate"]
        assert ev["heldout"] == 2 and ev["compared"] <= 2
        assert ev["wins"] + ev["ties"] + ev["losses"] == ev["compared"]
        assert mt["heldout_win_rate"] == ev["win_rate"]
        assert record["counts"]["iterations"][t]["pairs"] == sel["pairs"]

    # the preference rows export to TRL's format and read as DPO input
    from synth_ray.export import export_preferences
    from synth_ray.train.data import read_training_rows_local

    got = export_preferences(str(out / "iter_1"), str(tmp_path / "prefs.jsonl"))
    assert got["written"] == m1["metrics"]["pairs"]
    rows, bad = read_training_rows_local(str(out / "iter_1" / "preferences"), "pairwise")
    assert len(rows) == m1["metrics"]["pairs"] and not bad

    lines = lineage(out)
    assert len(lines) == 2 and all("probe: ok" in ln and '"pairs"' in ln for ln in lines)
    assert all("ift=16" in ln and "eft=8" in ln and "heldout=2" in ln for ln in lines)
    assert m1["model_out"]["fingerprint"] in lines[1]
