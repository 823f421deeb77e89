"""SPIN's parts that need no engine: the data split, request ids, pair building and its rejects
on recorded answers, the held-out figure, the config's defaults and checks, and the SPIN step
being DPO of M_t with M_t as the reference, the previous iteration's pairs mixed in."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from synth_ray.config import ConfigError
from synth_ray.job import load_all_jobs
from synth_ray.loops.base import Iteration
from synth_ray.loops.spin import spin as SP
from synth_ray.loops.spin.config import SpinConfig
from synth_ray.runner import load_job_config
from synth_ray.stages.records import write_preferences
from synth_ray.train.api import TrainResult

TINY = "jobs/tiny/spin.yaml"
M_T = SimpleNamespace(spec="m_t", source="/models/m_t", fingerprint="fp-m_t")
M_NEXT = SimpleNamespace(spec="m_next", source="/models/m_next", fingerprint="fp-m_next")


def cfg(tmp_path, **kw) -> SpinConfig:
    return SpinConfig(output_dir=str(tmp_path), **kw)


def _data(tmp_path, n=6):
    p = tmp_path / "sft.jsonl"
    rows = [
        {"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(n)
    ]
    rows.append({"instruction": "", "output": "no prompt"})  # left out: empty side
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


def test_split_holds_prompts_out_with_their_reference(tmp_path):
    c = cfg(tmp_path, data=_data(tmp_path), heldout=2)
    train, held = SP.split_data(c)
    assert len(train) == 4 and len(held) == 2
    assert {h["instruction"] for h in held}.isdisjoint(p["instruction"] for p in train)
    assert all(
        h["output"] == h["instruction"].replace("Question", "Answer")[:-1] + "." for h in held
    )
    train2, _ = SP.split_data(cfg(tmp_path, data=_data(tmp_path), heldout=2, max_prompts=3))
    assert train2 == train[:3]
    shipped, held_shipped = SP.split_data(cfg(tmp_path))  # the Self-Instruct seed instances
    assert len(shipped) > 100 and len(held_shipped) == 16


def test_request_ids_follow_the_prompt_and_the_model():
    s = cfg("/tmp/x").response_sampling
    a = SP.answer_requests(["x", "y"], s, M_T, "spin")
    assert a == SP.answer_requests(["x", "y"], s, M_T, "spin")  # a rerun asks the same
    assert len({r["id"] for r in a}) == 2
    b = SP.answer_requests(["x"], s, M_NEXT, "spin")
    assert b[0]["id"] != a[0]["id"]  # a retrained model answers anew
    assert json.loads(a[0]["sampling"])["seed"] != json.loads(a[1]["sampling"])["seed"]


def test_pairs_chosen_is_data_rejected_is_m_t_with_rejects_by_reason():
    pairs = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(5)]
    reqs = [{"id": f"r{i}"} for i in range(5)]
    gens = {
        "r0": {"completion": " m_t says 0 ", "error": None, "finish_reason": "stop"},
        "r1": {"completion": None, "error": "engine died", "finish_reason": None},
        "r2": {"completion": "   ", "error": None, "finish_reason": "stop"},
        "r3": {"completion": "a3", "error": None, "finish_reason": "stop"},
    }  # r4: no generation row at all
    prefs, rejects = SP.spin_pairs(pairs, gens, reqs, "fp-m_t", 1)
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in prefs] == [
        ("q0", "a0", "m_t says 0")
    ]
    assert (prefs[0]["model_chosen"], prefs[0]["model_rejected"], prefs[0]["iteration"]) == (
        "data",
        "fp-m_t",
        1,
    )
    assert [(r["id"], r["reason"]) for r in rejects] == [
        ("r1", "generation_failed"),
        ("r2", "empty_generation"),
        ("r3", "generation_equals_data"),
        ("r4", "generation_failed"),
    ]


def test_heldout_rouge():
    refs = {"a": "the cat sat on the mat", "b": "a dog"}
    assert SP.mean_rouge({"a": "the cat sat on the mat", "b": "a dog"}, refs) == 1.0
    assert SP.mean_rouge({"a": "the cat sat on the mat"}, refs) == 1.0  # answered only
    assert 0 < SP.mean_rouge({"a": "the cat", "b": "xyz"}, refs) < 0.5
    assert SP.mean_rouge({}, refs) is None


# -- the SPIN step --


class _Served:
    def __init__(self):
        self.calls = []

    def before_training(self, scaling):
        self.calls.append(scaling)


def _prefs(path, tag, n):
    write_preferences(
        str(path),
        [
            {"prompt": f"{tag}{i}", "chosen": "data", "rejected": f"gen {tag}", "method": "spin"}
            for i in range(n)
        ],
    )


def _train(tmp_path, monkeypatch, t, **kw):
    calls = []

    def fake_train(kind, data, base, out, settings):
        calls.append((kind, data, base, out, settings))
        return TrainResult(f"{out}/model", {"dpo": {"last": {"rewards/margins": 0.1}}})

    monkeypatch.setattr(SP, "train_model", fake_train)
    c = cfg(tmp_path, **kw)
    ctx = SimpleNamespace(config=c, layout=SimpleNamespace(root=str(tmp_path)))
    it = Iteration(str(tmp_path), t, "run-a")
    served = _Served()
    return it, served, calls, SP.Spin()._train(ctx, it, served, M_T)


def test_spin_step_is_dpo_of_m_t_with_m_t_as_reference_and_mixes_the_previous_pairs(
    tmp_path, monkeypatch
):
    _prefs(tmp_path / "iter_0" / "preferences", "old", 2)
    _prefs(tmp_path / "iter_1" / "preferences", "new", 3)
    it, served, calls, res = _train(tmp_path, monkeypatch, 1)
    ((kind, rows, base, out, settings),) = calls
    assert (kind, base, settings["ref_model"], out) == (
        "dpo",
        M_T.source,
        M_T.source,
        it.sub("m_next"),
    )
    assert sorted(r["prompt"] for r in rows) == ["new0", "new1", "new2", "old0", "old1"]
    assert (settings["beta"], settings["learning_rate"], settings["epochs"]) == (0.1, 5e-7, 3.0)
    assert res["reference"]["fingerprint"] == M_T.fingerprint and res["rows"] == 5
    assert it.manifest["settings"]["dpo_reference"]["source"] == M_T.source
    assert served.calls == [{}]
    # without mixing, or in iteration 0, only this iteration's pairs
    _, _, calls, res = _train(tmp_path, monkeypatch, 1, mix_previous=False)
    assert sorted(r["prompt"] for r in calls[0][1]) == ["new0", "new1", "new2"]
    _, _, calls, res = _train(tmp_path, monkeypatch, 0)
    assert sorted(r["prompt"] for r in calls[0][1]) == ["old0", "old1"]


def test_no_pairs_carries_m_t_over_without_training(tmp_path, monkeypatch):
    write_preferences(str(tmp_path / "iter_0" / "preferences"), [])
    _, served, calls, res = _train(tmp_path, monkeypatch, 0)
    assert calls == [] and served.calls == []
    assert res["model"] == M_T.source and res["skipped"] == "no pairs"


# -- config --


def test_paper_defaults(tmp_path):
    c = cfg(tmp_path)
    assert (c.iterations, c.mix_previous, c.heldout) == (3, True, 16)
    r = c.response_sampling
    assert (r.temperature, r.top_p, r.max_tokens) == (1.0, 1.0, 256)
    assert c.dpo == {
        "beta": 0.1,
        "learning_rate": 5e-7,
        "warmup_ratio": 0.1,
        "epochs": 3.0,
        "max_length": 1024,
    }
    # settings given in a job file are laid over the paper's, not in place of them
    tiny = load_job_config(TINY, [f"output_dir={tmp_path}"])
    assert tiny.dpo["beta"] == 0.1 and tiny.dpo["max_steps"] == 2
    real = load_job_config("jobs/spin.yaml")
    assert (real.model, real.iterations) == ("smollm2-135m", 3)
    assert load_all_jobs().get("spin").kind == "loop"


@pytest.mark.parametrize(
    "override,field",
    [
        ("dpo.ref_model=tiny", "ref_model"),
        ("dpo.beta=0", "beta"),
        ("heldout=-1", "heldout"),
        ("mix_previus=true", "mix_previus"),
    ],
)
def test_bad_settings_rejected_before_work(tmp_path, override, field):
    with pytest.raises(ConfigError, match=field):
        load_job_config(TINY, [f"output_dir={tmp_path}", override])


def test_preflight(tmp_path):
    job = SP.Spin()
    job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}"]))
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"instruction": "q", "output": ""}) + "\n")
    with pytest.raises(ConfigError, match="field 'data'"):
        job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}", f"data={empty}"]))
    with pytest.raises(ConfigError, match="engine.lifetime"):
        job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}", "engine.lifetime=dataset"]))
