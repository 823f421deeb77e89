"""ReST-EM's parts that need no engine: problem loading in each format with its rejects, the
held-out split, request ids, the verify stage's inputs, selection with the K cap and its
rejects, the pass@k estimator, the config's defaults and checks, and the M-step being SFT of
the base model, never of M_t."""

from __future__ import annotations

import gzip
import json
from math import comb
from types import SimpleNamespace

import pytest

from synth_ray.config import ConfigError
from synth_ray.io.layout import read_parquet_dir
from synth_ray.job import load_all_jobs
from synth_ray.loops.base import Iteration
from synth_ray.loops.rest_em import problems as P
from synth_ray.loops.rest_em import rest_em as R
from synth_ray.loops.rest_em.config import RestEMConfig
from synth_ray.runner import load_job_config
from synth_ray.stages.records import write_table_dir
from synth_ray.train.api import TrainResult

TINY = "jobs/tiny/rest_em.yaml"
BASE = SimpleNamespace(spec="tiny", source="/models/base", fingerprint="fp-base")
M_T = SimpleNamespace(spec="m_t", source="/models/m_t", fingerprint="fp-m_t")
M_NEXT = SimpleNamespace(spec="m_next", source="/models/m_next", fingerprint="fp-m_next")
GSM8K = "../shared/data/gsm8k_test.jsonl"
HUMANEVAL = "../shared/data/humaneval.jsonl.gz"


def cfg(tmp_path, **kw) -> RestEMConfig:
    return RestEMConfig(output_dir=str(tmp_path), **kw)


def _jsonl(path, rows, gz=False):
    data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


# -- problems --


def test_problems_in_each_format_with_rejects_by_reason(tmp_path):
    path = _jsonl(
        tmp_path / "mixed.jsonl.gz",
        [
            {"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"},  # GSM8K
            {"problem": "Simplify 2/4.", "solution": "It is $\\boxed{1/2}$."},  # MATH
            {
                "task_id": "HE/0",
                "prompt": "def add(a, b):\n",
                "entry_point": "add",
                "test": "def check(c):\n    assert c(1, 2) == 3\n",
                "canonical_solution": "    return a + b\n",
            },
            {"task_id": 7, "text": "Write double(x).", "test_list": ["assert double(2) == 4"]},
            {"question": "What is 2 + 3?", "answer": "#### 5"},  # the same question again
            {"question": "", "answer": "#### 1"},
            {"instruction": "hello", "output": "hi"},
            "{not json",
            "[1, 2]",
        ],
        gz=True,
    )
    probs, rejects = P.read_problems(path)
    assert [(p["kind"], p["format"]) for p in probs] == [
        ("math", "gsm8k"),
        ("math", "math"),
        ("code", "humaneval"),
        ("code", "mbpp"),
    ]
    gsm, math, he, mbpp = probs
    assert gsm["fields"] == {"answer": "2 + 3 = 5\n#### 5"} and gsm["reference"].endswith("#### 5")
    assert gsm["id"].startswith("p-") and math["reference"].endswith("$\\boxed{1/2}$.")
    assert he["id"] == "HE/0" and "def add(a, b):" in he["prompt"] and "```python" in he["prompt"]
    assert he["reference"] == "```python\ndef add(a, b):\n    return a + b\n```"
    assert set(he["fields"]) == {"prompt", "entry_point", "test"}
    assert mbpp["id"] == "7" and "assert double(2) == 4" in mbpp["prompt"]
    assert mbpp["reference"] is None  # no code given: nothing to add as a reference
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (5, "duplicate_problem"),
        (6, "empty_field"),
        (7, "unknown_format"),
        (8, "bad_json"),
        (9, "bad_json"),
    ]


def test_shared_data_and_generator_rows_load():
    import os

    if os.path.exists(GSM8K):
        probs, rejects = P.read_problems(GSM8K)
        assert len(probs) == 1319 and not rejects and probs[0]["format"] == "gsm8k"
    if os.path.exists(HUMANEVAL):
        probs, rejects = P.read_problems(HUMANEVAL)
        assert len(probs) == 164 and not rejects and probs[0]["id"] == "HumanEval/0"
    gen = P.generated("arithmetic", 10, 3, None)
    assert len({p["id"] for p in gen}) == 10 and all(p["id"].startswith("arithmetic-") for p in gen)
    assert all(p["format"] == "generated" and "####" in p["reference"] for p in gen)


def test_heldout_split_is_stable_and_disjoint(tmp_path):
    c = cfg(tmp_path, generate={"count": 30, "seed": 1}, heldout=5)
    train, held = P.load_split(c)
    assert len(train) == 25 and len(held) == 5
    assert {p["id"] for p in train}.isdisjoint(p["id"] for p in held)
    again, held2 = P.load_split(cfg(tmp_path, generate={"count": 30, "seed": 1}, heldout=5))
    assert again == train and held2 == held
    capped, held3 = P.load_split(
        cfg(tmp_path, generate={"count": 30, "seed": 1}, heldout=5, max_problems=4)
    )
    assert capped == train[:4] and held3 == held


# -- requests, verify inputs, selection --


def test_requests_follow_problem_sampling_and_model(tmp_path):
    c = cfg(tmp_path)
    probs = P.generated("arithmetic", 2, 0, None)
    a = R.sample_requests(probs, c.sampling, 32, M_T, "restem")
    assert a == R.sample_requests(probs, c.sampling, 32, M_T, "restem")  # a rerun asks the same
    s = json.loads(a[0]["sampling"])
    assert (s["n"], s["temperature"]) == (32, 0.7)
    assert s["seed"] != json.loads(a[1]["sampling"])["seed"]
    assert R.sample_requests(probs, c.sampling, 32, M_NEXT, "restem")[0]["id"] != a[0]["id"]
    assert [r["problem_id"] for r in a] == [p["id"] for p in probs]


def _problem(pid):
    return {"id": pid, "prompt": f"q {pid}", "fields": {"answer": "#### 1"}, "reference": "#### 1"}


def test_verify_inputs_cover_every_sample():
    probs = [_problem("a"), _problem("b")]
    reqs = [{"id": "ra"}, {"id": "rb"}]
    gens = [
        {"request_id": "ra", "sample_index": 0, "completion": "1", "error": None},
        {"request_id": "ra", "sample_index": 1, "completion": "", "error": "engine died"},
        {"request_id": "rb", "sample_index": 1, "completion": "2", "error": None},
    ]
    rows = R.verify_inputs(probs, reqs, gens, "train", 2)
    assert [(r["problem_id"], r["sample_index"], r["output"]) for r in rows] == [
        ("a", 0, "1"),
        ("a", 1, None),  # failed: no output, the verify stage gives it reward 0
        ("b", 0, None),  # missing
        ("b", 1, "2"),
    ]
    assert rows[1]["generation_error"] == "engine died" and rows[0]["answer"] == "#### 1"
    refs = R.reference_inputs(probs + [{**_problem("c"), "reference": None}])
    assert [(r["problem_id"], r["source"], r["output"]) for r in refs] == [
        ("a", "reference", "#### 1"),
        ("b", "reference", "#### 1"),
    ]


def _v(pid, k, reward, reason="correct: x", source="model", err=None):
    return {
        "id": f"{pid}-{k}",
        "problem_id": pid,
        "sample_index": k,
        "reward": reward,
        "verify_reason": reason if reward else reason.replace("correct", "wrong_answer"),
        "output": f"sol {pid}{k}",
        "source": source,
        "generation_error": err,
    }


def test_selection_keeps_at_most_k_correct_per_problem_and_rejects_the_rest():
    probs = [_problem(x) for x in "abcde"]
    verified = [_v("a", k, 1) for k in range(12)]  # 12 correct: 10 kept
    verified += [_v("b", 0, 0), _v("b", 1, 1), _v("b", 2, 0), _v("b", -1, 1, source="reference")]
    verified += [_v("c", 0, 0, "wrong_answer: 3"), _v("c", 1, 0, "no_answer: none")]
    verified += [_v("d", 0, 0, err="engine died"), _v("d", 1, 0, err="engine died")]
    kept, rejects, counts = R.select(probs, verified, 10, 1)
    assert [k["sample_index"] for k in kept if k["problem_id"] == "a"] == list(range(10))
    assert [(k["sample_index"], k["source"]) for k in kept if k["problem_id"] == "b"] == [
        (-1, "reference"),
        (1, "model"),
    ]
    k0 = kept[0]
    assert (k0["instruction"], k0["output"], k0["iteration"]) == ("q a", "sol a0", 1)
    assert [(r["id"], r["reason"]) for r in rejects] == [
        ("c", "no_correct_sample"),
        ("d", "generation_failed"),
        ("e", "no_samples"),
    ]
    assert "0/2 correct: no_answer 1, wrong_answer 1" in rejects[0]["detail"]
    assert counts == {
        "problems": 5,
        "solved": 2,
        "kept": 12,
        "kept_references": 1,
        "over_cap": 2,
        "rejected": {"generation_failed": 1, "no_correct_sample": 1, "no_samples": 1},
    }
    kept, _, counts = R.select(probs[:1], verified, 3, 0)
    assert len(kept) == 3 and counts["over_cap"] == 9


def test_pass_at_k_is_the_unbiased_estimator():
    for n, c, k in [(10, 3, 1), (10, 3, 5), (16, 1, 8), (5, 0, 2), (4, 4, 2)]:
        want = 1 - comb(n - c, k) / comb(n, k)
        assert R.pass_at_k(n, c, k) == pytest.approx(want)
    assert R.pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = the correct fraction
    assert R.pass_at_k(3, 1, 8) == 1.0 and R.pass_at_k(0, 0, 1) == 0.0
    verified = [_v("a", k, int(k < 2)) for k in range(4)] + [_v("b", k, 0) for k in range(4)]
    verified.append(_v("b", -1, 1, source="reference"))  # references never count
    figs = R.pass_figures(verified, 2)
    assert figs["problems"] == 2 and figs["samples"] == 8 and figs["correct"] == 2
    assert figs["pass@1"] == 0.25 and figs["pass@2"] == round((1 - 1 / 6) / 2, 4)
    assert R.pass_figures([], 2)["pass@1"] is None


# -- the M-step --


class _Served:
    def __init__(self):
        self.calls = []

    def before_training(self, scaling):
        self.calls.append(scaling)


def _train(tmp_path, monkeypatch, t, kept):
    calls = []

    def fake_train(kind, data, base, out, settings):
        calls.append((kind, data, base, out, settings))
        return TrainResult(f"{out}/model", {"train_loss": 1.5})

    monkeypatch.setattr(R, "train_model", fake_train)
    c = cfg(tmp_path, sft={"learning_rate": 1e-4, "scaling": {"num_workers": 1}})
    ctx = SimpleNamespace(config=c, layout=SimpleNamespace(root=str(tmp_path)), model=BASE)
    it = Iteration(str(tmp_path), t, "run-a")
    import pyarrow as pa

    rows = [
        {"id": f"s{i}", "instruction": f"q{i}", "input": "", "output": f"a{i}", "source": "model"}
        for i in range(kept)
    ]
    write_table_dir(
        it.sub("kept"),
        pa.Table.from_pylist(rows) if rows else pa.table({"id": pa.array([], pa.string())}),
    )
    served = _Served()
    return it, served, calls, R.RestEM()._train(ctx, it, served)


def test_m_step_is_sft_of_the_base_model_not_m_t(tmp_path, monkeypatch):
    # iteration 1: M_t is M_1, yet the M-step fine-tunes the base model
    it, served, calls, res = _train(tmp_path, monkeypatch, 1, 3)
    ((kind, rows, base, out, settings),) = calls
    assert (kind, base, out) == ("sft", BASE.source, it.sub("m_next"))
    assert base != M_T.source
    assert [r["instruction"] for r in rows] == ["q0", "q1", "q2"]
    assert set(rows[0]) == {"id", "instruction", "input", "output"}
    assert settings == {"learning_rate": 1e-4, "scaling": {"num_workers": 1}}
    assert res["base"]["fingerprint"] == BASE.fingerprint and res["rows"] == 3
    assert it.manifest["settings"]["m_step_base"]["source"] == BASE.source
    assert served.calls == [{"num_workers": 1}]


def test_nothing_kept_gives_the_base_model_without_training(tmp_path, monkeypatch):
    _, served, calls, res = _train(tmp_path, monkeypatch, 0, 0)
    assert calls == [] and served.calls == []
    assert res["model"] == BASE.source and res["rows"] == 0
    assert "base model" in res["skipped"]


def test_run_verifier_writes_nothing_but_an_empty_table_for_no_rows(tmp_path):
    assert R.run_verifier(cfg(tmp_path), [], str(tmp_path / "v")) == []
    assert read_parquet_dir(str(tmp_path / "v")).num_rows == 0


# -- config --


def test_paper_defaults(tmp_path):
    c = cfg(tmp_path)
    assert (c.iterations, c.samples, c.max_per_problem, c.verifier) == (3, 32, 10, "math")
    assert (c.sampling.temperature, c.include_reference_solutions) == (0.7, False)
    assert (c.problems, c.generate.generator, c.generate.count, c.heldout) == (
        None,
        "arithmetic",
        1000,
        100,
    )
    assert (c.eval_samples, c.pass_k) == (16, 8)
    tiny = load_job_config(TINY, [f"output_dir={tmp_path}"])
    assert (tiny.iterations, tiny.swap, tiny.sft["max_steps"]) == (2, "reload", 2)
    assert tiny.include_reference_solutions is True
    real = load_job_config("jobs/rest_em.yaml")
    assert (real.model, real.iterations, real.samples) == ("smollm2-135m", 3, 32)
    assert load_all_jobs().get("rest_em").kind == "loop"
    assert c.verify_config().verifier == "math" and c.verify_config().output_field == "output"


@pytest.mark.parametrize(
    "override,field",
    [
        ("sft.model=tiny", "model"),
        ("sft.learning_rate=0", "learning_rate"),
        ("samples=0", "samples"),
        ("max_per_problem=0", "max_per_problem"),
        ("pass_k=99", "pass_k"),
        ("verifier=lean", "verifier"),
        ("verify.verifier=code", "verifier"),
        ("verify.batch_sise=3", "batch_sise"),
        ("max_per_problm=3", "max_per_problm"),
    ],
)
def test_bad_settings_rejected_before_work(tmp_path, override, field):
    with pytest.raises(ConfigError, match=field):
        load_job_config(TINY, [f"output_dir={tmp_path}", override])


def test_preflight(tmp_path):
    job = R.RestEM()
    job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}"]))
    bad = _jsonl(tmp_path / "bad.jsonl", [{"instruction": "q", "output": "a"}])
    with pytest.raises(ConfigError, match="field 'problems'"):
        job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}", f"problems={bad}"]))
    code = _jsonl(
        tmp_path / "code.jsonl",
        [{"task_id": i, "text": f"f{i}", "test_list": ["assert True"]} for i in range(5)],
    )
    with pytest.raises(ConfigError, match="field 'verifier'"):
        job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}", f"problems={code}"]))
    with pytest.raises(ConfigError, match="engine.lifetime"):
        job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}", "engine.lifetime=dataset"]))
