"""ReST-EM end to end on the tiny model (real Ray, vLLM, the math verifier on Ray Data, Ray
Train), 2 iterations over generated arithmetic problems: M_t's samples and the problems' own
worked solutions (``include_reference_solutions``: the random model solves nothing) each get a
reward from the verify stage, the same verdict a fresh verifier gives; at most K kept per problem,
every problem kept or rejected with its reason; the M-step SFT of the base model in both
iterations; the swap probe; held-out pass@1/pass@k of M_0, M_1, M_2 in the manifests, run.json
and ``synth-ray lineage``; then the finished job run again: nothing generated, verified or
trained, no engine started."""

from __future__ import annotations

import json

import pytest

from synth_ray.io.layout import read_parquet_dir
from synth_ray.stages.verify import build_verifier

from .loopproc import REPO, assert_rerun_redoes_nothing, cli, finish, lineage, manifest

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.train]

JOB = REPO / "jobs" / "tiny" / "rest_em.yaml"
STAGES = ["generate", "verify", "select", "train", "swap", "evaluate"]
PROBLEMS, HELD, N, K = 6, 2, 4, 2  # jobs/tiny/rest_em.yaml


def test_two_iterations_then_a_rerun_that_redoes_nothing(tmp_path):
    out = tmp_path / "run"
    finish(cli(JOB, out))
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "succeeded"
    m0, m1 = manifest(out, 0), manifest(out, 1)
    assert list(m0["stages"]) == list(m1["stages"]) == STAGES
    assert m1["parent_model"]["fingerprint"] == m0["model_out"]["fingerprint"]
    base = m0["parent_model"]
    m0_kept = m0["stages"]["select"]["result"]["datasets"]["kept"]["hash"]
    math = build_verifier("math")
    try:
        for t, m in enumerate((m0, m1)):
            d = out / f"iter_{t}"
            st = {k: v["result"] for k, v in m["stages"].items()}
            assert all(s["status"] == "done" and s["attempts"] == 1 for s in m["stages"].values())
            # M_t sampled N per problem (in iteration 0 also N per held-out problem: M_0's figures)
            gen = read_parquet_dir(str(d / "data" / "generate")).to_pylist()
            assert (
                len(gen) == len({g["id"] for g in gen}) == N * (PROBLEMS + (HELD if t == 0 else 0))
            )
            # every sample and every reference verified by the verify stage; its verdicts are a
            # fresh math verifier's on the same outputs
            ver = read_parquet_dir(str(d / "verified")).to_pylist()
            train = [v for v in ver if v["split"] == "train"]
            assert len([v for v in train if v["source"] == "model"]) == PROBLEMS * N
            assert len([v for v in train if v["source"] == "reference"]) == PROBLEMS
            problems = {p["id"]: p for p in _problems()}
            for v in ver:
                assert v["verifier"] == "math" and v["reward"] in (0, 1)
                if v["output"] is None:  # a failed sample: reward 0 from the stage itself
                    assert (v["reward"], v["verify_reason"][:9]) == (0, "no_output")
                    continue
                want = math.verify({"answer": problems[v["problem_id"]]["answer"]}, v["output"])
                assert (v["reward"], v["verify_reason"]) == (want.reward, want.reason)
            refs = [v for v in train if v["source"] == "reference"]
            assert all(v["reward"] == 1 and v["verify_reason"].startswith("correct") for v in refs)
            vs = st["verify"]
            assert vs["samples"] == PROBLEMS * N and vs["references_correct"] == PROBLEMS
            assert vs["correct"] == sum(v["reward"] for v in train if v["source"] == "model")
            # at most K kept per problem; every problem kept or rejected with its reason
            sel = st["select"]
            kept = read_parquet_dir(str(d / "kept")).to_pylist()
            assert len(kept) == sel["kept"] and sel["solved"] == PROBLEMS
            per = {}
            for k in kept:
                per[k["problem_id"]] = per.get(k["problem_id"], 0) + 1
                assert k["iteration"] == t and k["method"] == "rest_em"
            assert set(per) == set(problems) - set(_held_ids()) and max(per.values()) <= K
            assert sel["problems"] == PROBLEMS == sel["solved"] + sum(sel["rejected"].values())
            # the M-step: SFT of the base model (not M_t) on the kept rows, trained for real
            tr = st["train"]
            assert tr["base"]["fingerprint"] == base["fingerprint"] and tr["rows"] == len(kept)
            assert "skipped" not in tr and tr["metrics"]["steps"] == 2
            assert m["settings"]["m_step_base"]["fingerprint"] == base["fingerprint"]
            assert m["probe"]["ok"] and m["probe"]["model"] == m["model_out"]["fingerprint"]
            if t == 0 or st["select"]["datasets"]["kept"]["hash"] != m0_kept:
                assert m["probe"]["differs_from_parent"] is True
            else:  # the same kept rows as iteration 0: SFT of the same base gives M_1 again
                # (an M-step from M_t would have moved it): nothing to swap
                assert m["model_out"]["fingerprint"] == m0["model_out"]["fingerprint"]
                assert m["probe"]["swap"] == "none (already served)"
            # held-out pass@1/pass@2 of M_t (before) and M_{t+1} (after)
            ev = st["evaluate"]
            assert ev["problems"] == HELD and ev["samples"] == HELD * N
            held = read_parquet_dir(str(d / "heldout_verified")).to_pylist()
            assert len(held) == HELD * N and all(v["verifier"] == "math" for v in held)
            mt = m["metrics"]
            assert mt["samples"] == PROBLEMS * N and mt["kept_rows"] == len(kept)
            assert mt["problems_solved"] == PROBLEMS and mt["trained"] is True
            assert isinstance(mt["train_loss"], float)
            for key in ("pass@1", "pass@2"):
                assert 0.0 <= mt[f"heldout_{key}_before"] <= 1.0
                assert mt[f"heldout_{key}_after"] == ev[key]
            assert record["counts"]["iterations"][t]["kept_rows"] == len(kept)
        assert m0["stages"]["verify"]["result"]["heldout_m0"]["problems"] == HELD
        assert m1["metrics"]["heldout_pass@1_before"] == m0["metrics"]["heldout_pass@1_after"]
        # a different model served in iteration 1: M_1 sampled anew
        g0 = {
            g["request_id"] for g in read_parquet_dir(str(out / "iter_0/data/generate")).to_pylist()
        }
        g1 = {
            g["request_id"] for g in read_parquet_dir(str(out / "iter_1/data/generate")).to_pylist()
        }
        assert g0.isdisjoint(g1)
    finally:
        math.close()
    # the kept rows read as SFT input
    from synth_ray.train.data import read_training_rows_local

    rows, bad = read_training_rows_local(str(out / "iter_1" / "kept"), "sft")
    assert len(rows) == m1["metrics"]["kept_rows"] and not bad
    lines = lineage(out)
    assert len(lines) == 2 and all("probe: ok" in ln and "problems=6" in ln for ln in lines)
    assert all(f"select.kept={m['metrics']['kept_rows']}" in ln for m, ln in zip((m0, m1), lines))

    # run again: every stage found done, nothing generated, verified or trained, no engine
    assert_rerun_redoes_nothing(JOB, out, record, STAGES)


def _problems():
    from synth_ray.stages.problems import generate_problems

    return generate_problems("arithmetic", PROBLEMS + HELD, seed=0)


def _held_ids():
    from synth_ray.loops.rest_em.config import RestEMConfig
    from synth_ray.loops.rest_em.problems import load_split
    from synth_ray.runner import load_job_config

    cfg = load_job_config(str(JOB), ["output_dir=/tmp/unused"])
    assert isinstance(cfg, RestEMConfig)
    return [p["id"] for p in load_split(cfg)[1]]
