"""Constitutional AI's supervised stage end to end on the tiny model (real Ray, vLLM, Ray Train):
killed inside the second critique-revision round, run again to the end: the finished stages are
not redone and no generation is written twice; every red-team prompt a chain of revisions under
sampled principles or a reject; the SFT rows (final revisions and helpful responses) trained on,
the swap probe, the manifest, run.json and ``synth-ray lineage``."""

from __future__ import annotations

import json

import pytest

from synth_ray.io.layout import read_parquet_dir
from synth_ray.loops.constitutional import constitution as C

from .loopproc import REPO, cli, finish, kill_when, lineage, manifest, stage

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.train]

JOB = REPO / "jobs" / "tiny" / "constitutional_sl.yaml"
STAGES = ["respond", "revise_1", "revise_2", "sft_data", "train", "swap"]


def _ids(path):
    table = read_parquet_dir(str(path))
    return table.select(["id", "run_id"]).to_pylist() if table is not None else []


def test_killed_mid_revision_then_finished(tmp_path):
    out = tmp_path / "run"
    d = out / "iter_0"
    first = cli(JOB, out)
    kill_when(first, lambda: stage(out, 0, "revise_2") == "running")
    before = {name: _ids(d / "data" / name) for name in ("respond", "critique_1", "revision_1")}
    assert all(before.values())
    finish(cli(JOB, out))

    record = json.loads((out / "run.json").read_text())
    m = manifest(out, 0)
    assert record["status"] == "succeeded" and list(m["stages"]) == STAGES
    assert len(m["run_ids"]) == 2
    st = {k: v["result"] for k, v in m["stages"].items()}
    # the stages finished before the kill ran once; the killed one resumed
    assert {k: v["attempts"] for k, v in m["stages"].items()} == {
        s: 2 if s == "revise_2" else 1 for s in STAGES
    }
    for name, rows in before.items():  # nothing generated twice, the first run's rows kept
        after = _ids(d / "data" / name)
        assert sorted(map(str, after)) == sorted(map(str, rows))
    for name in ("critique_2", "revision_2"):
        ids = [r["id"] for r in _ids(d / "data" / name)]
        assert len(ids) == len(set(ids)) > 0

    # every prompt: a chain, or a reject saying where it stopped
    prompts = C.load_prompts()[:8]
    chains = [read_parquet_dir(str(d / "chain" / f"r{r}")).to_pylist() for r in range(3)]
    assert sorted(x["prompt"] for x in chains[0]) == sorted(prompts)
    assert st["respond"]["responded"] == 8 and st["respond"]["requested"] > 8  # + helpful
    names = {p.name for p in C.load_constitution()}
    for r in (1, 2):
        assert st[f"revise_{r}"]["in"] == len(chains[r - 1])
        assert st[f"revise_{r}"]["revised"] == len(chains[r])
        for x in chains[r]:
            assert (
                x["principle"] == C.sample_principle(C.load_constitution(), x["prompt"], r, 0).name
            )
            assert x["principle"] in names and x["critique"] and x["text"]
    # the SFT rows: each revised prompt's final revision, then helpful rows at 135:183
    sft = read_parquet_dir(str(d / "sft")).to_pylist()
    final = {}
    for rows in chains[1:]:
        final.update({x["prompt"]: x["text"] for x in rows})
    harmless = [r for r in sft if r["origin"].startswith("revision")]
    assert {r["messages"][0]["content"]: r["messages"][1]["content"] for r in harmless} == final
    helpful = [r for r in sft if r["origin"] == "helpful_model"]
    assert len(helpful) == round(135 / 183 * len(final)) == st["sft_data"]["helpful_rows"]
    assert st["sft_data"]["rejected"] == 8 - len(final)
    # trained from the base on exactly those rows; the engine serves the new model
    assert st["train"]["rows"] == len(sft) and st["train"]["base"]["spec"] == "tiny"
    assert m["probe"]["ok"] and m["probe"]["model"] == m["model_out"]["fingerprint"]
    assert m["probe"]["differs_from_parent"] is True
    assert record["counts"]["iterations"][0]["revised"] == [len(chains[1]), len(chains[2])]
    (line,) = lineage(out)
    assert "probe: ok" in line and "red_team=8" in line and f"sft_data.sft={len(sft)}" in line
