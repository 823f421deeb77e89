"""SL-CAI's parts that need no engine: the constitution, prompt and few-shot files and their
errors, principle sampling, the critique and revision conversations, the SFT and preference rows
built from recorded chains (final or every revision, the helpful mix, rejects), the config's
defaults and checks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from synth_ray.config import ConfigError
from synth_ray.io.layout import read_parquet_dir
from synth_ray.job import load_all_jobs
from synth_ray.loops.base import Iteration
from synth_ray.loops.constitutional import constitution as C
from synth_ray.loops.constitutional import rl_cai as RL
from synth_ray.loops.constitutional import sl_cai as SL
from synth_ray.loops.constitutional.config import ConstitutionalRLConfig, ConstitutionalSLConfig
from synth_ray.runner import load_job_config

TINY = "jobs/tiny/constitutional_sl.yaml"
M_T = SimpleNamespace(spec="m_t", source="/models/m_t", fingerprint="fp-m_t")
P = {
    "name": "kind",
    "critique": "Is it kind?",
    "revision": "Make it kind.",
    "choice": "Which is kinder?",
}


def _jsonl(tmp_path, name, rows):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(p)


def test_shipped_files_load():
    cons = C.load_constitution()
    assert len(cons) == 16 and len({p.name for p in cons}) == 16
    assert all(p.critique and p.revision and p.choice.endswith("?") for p in cons)
    assert len(C.load_prompts()) == 40
    ex = C.load_fewshot(None, cons)
    assert len(ex) == 2 and all(e["principle"] in {p.name for p in cons} for e in ex)


@pytest.mark.parametrize(
    "rows,match",
    [
        (["{not json"], "line 1: not JSON"),
        ([["a list"]], "line 1: a principle is a JSON object"),
        ([{**P, "choice": ""}], "line 1: missing or empty choice"),
        ([{**P, "extra": 1}], r"unknown fields \['extra'\]"),
        ([P, P], r"principle names repeated: \['kind'\]"),
        ([""], "no principles"),
    ],
)
def test_bad_constitution_names_file_and_line(tmp_path, rows, match):
    with pytest.raises(ValueError, match=match):
        C.load_constitution(_jsonl(tmp_path, "c.jsonl", rows))


def test_prompts_and_fewshot_checks(tmp_path):
    path = _jsonl(tmp_path, "p.jsonl", [{"prompt": " a "}, {"instruction": "b"}, {"prompt": "a"}])
    assert C.load_prompts(path) == ["a", "b"]  # trimmed, repeats once
    with pytest.raises(ValueError, match="line 2: a row needs a 'prompt'"):
        C.load_prompts(_jsonl(tmp_path, "q.jsonl", [{"prompt": "a"}, {"prompt": 3}]))
    cons = [C.Principle(**P)]
    ex = {"prompt": "x", "response": "y", "principle": "other", "critique": "c", "revision": "r"}
    with pytest.raises(ValueError, match="'other' is not in the constitution"):
        C.load_fewshot(_jsonl(tmp_path, "f.jsonl", [ex]), cons)
    with pytest.raises(ValueError, match="an example needs"):
        C.load_fewshot(_jsonl(tmp_path, "g.jsonl", [{**ex, "critique": ""}]), cons)


def test_principle_sampling_is_seeded_per_prompt_and_round():
    cons = C.load_constitution()
    a = [C.sample_principle(cons, "p", r, 0).name for r in range(1, 9)]
    assert a == [C.sample_principle(cons, "p", r, 0).name for r in range(1, 9)]  # a rerun
    assert len(set(a)) > 1  # rounds differ
    many = {C.sample_principle(cons, f"p{i}", 1, 0).name for i in range(200)}
    assert len(many) == 16  # every principle is drawn
    assert a != [C.sample_principle(cons, "p", r, 1).name for r in range(1, 9)]


def test_conversations_show_the_examples_then_the_response_and_the_requests():
    cons = C.load_constitution()
    ex = C.load_fewshot(None, cons)
    p = cons[3]
    msgs = C.critique_messages("Q?", "bad answer", p, ex, cons)
    assert len(msgs) == 6 * len(ex) + 3
    assert [m["role"] for m in msgs[:6]] == ["user", "assistant"] * 3
    first = {c.name: c for c in cons}[ex[0]["principle"]]
    assert msgs[2]["content"] == f"Critique request: {first.critique}"
    assert msgs[5]["content"] == f"Revision: {ex[0]['revision']}"
    assert msgs[-3:] == [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "bad answer"},
        {"role": "user", "content": f"Critique request: {p.critique}"},
    ]
    rev = C.revision_messages(msgs, "it is bad", p)
    assert rev[:-2] == msgs and rev[-2:] == [
        {"role": "assistant", "content": "Critique: it is bad"},
        {"role": "user", "content": f"Revision request: {p.revision}"},
    ]
    assert len(C.critique_messages("Q?", "a", p, [], cons)) == 3  # no examples


def test_strip_label():
    assert C.strip_label(" Revision: better. ", "revision") == "better."
    assert C.strip_label("critique: x", "critique") == "x"
    assert C.strip_label("Revision:", "revision") == ""
    assert C.strip_label("No label here", "revision") == "No label here"


# -- the SFT data from recorded chains --


def _chain(it, r, rows):
    SL.write_chain(
        it.sub(f"chain/r{r}"),
        [
            {
                "prompt": p,
                "round": r,
                "principle": None if r == 0 else "harm",
                "critique": None if r == 0 else "c",
                "text": t,
                "request_id": f"{p}-{r}",
            }
            for p, t in rows
        ],
    )


def _sft_data(tmp_path, **kw):
    prompts = _jsonl(tmp_path, "red.jsonl", [{"prompt": x} for x in ("a", "b", "c")])
    helpful = _jsonl(
        tmp_path,
        "help.jsonl",
        [{"instruction": f"h{i}", "input": "", "output": f"o{i}"} for i in range(5)],
    )
    c = ConstitutionalSLConfig(
        output_dir=str(tmp_path),
        red_team=prompts,
        helpful=helpful,
        helpful_source="data",
        revisions=2,
        **kw,
    )
    it = Iteration(str(tmp_path), 0, "run-a")
    _chain(it, 0, [("a", "bad a"), ("b", "bad b"), ("c", "bad c")])
    _chain(it, 1, [("a", "better a"), ("b", "bad b")])  # c: its round failed
    _chain(it, 2, [("a", "best a")])  # b: its second round failed
    ctx = SimpleNamespace(config=c, run_id="run-a", layout=SimpleNamespace(root=str(tmp_path)))
    res = SL.ConstitutionalSL()._sft_data(ctx, it, M_T)
    sft = read_parquet_dir(it.sub("sft")).to_pylist()
    prefs = read_parquet_dir(it.sub("preferences")).to_pylist()
    return res, sft, prefs


def test_sft_rows_are_the_final_revisions_plus_helpful_rows(tmp_path):
    res, sft, prefs = _sft_data(tmp_path, helpful_ratio=1.0)
    harmless = [
        (r["messages"][0]["content"], r["messages"][1]["content"], r["origin"])
        for r in sft
        if r["origin"].startswith("revision")
    ]
    assert sorted(harmless) == [("a", "best a", "revision_r2"), ("b", "bad b", "revision_r1")]
    helpful = [r for r in sft if r["origin"] == "helpful_data"]
    assert len(helpful) == 2 == res["helpful_rows"]  # ratio 1.0 of 2 harmless rows
    assert (res["harmless_rows"], res["rejected"]) == (2, 1)  # c: never revised
    # a preference pair where the revision differs from the initial response
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in prefs] == [("a", "best a", "bad a")]
    assert json.loads(prefs[0]["extra"]) == {"principle": "harm", "rounds": 2}


def test_train_on_all_revisions_and_no_helpful(tmp_path):
    res, sft, _ = _sft_data(tmp_path, helpful_ratio=0.0, train_on="all")
    assert sorted(r["messages"][1]["content"] for r in sft) == ["bad b", "best a", "better a"]
    assert (res["harmless_rows"], res["helpful_rows"]) == (3, 0)


# -- config --


def test_paper_defaults(tmp_path):
    c = ConstitutionalSLConfig(output_dir=str(tmp_path))
    assert (c.iterations, c.revisions, c.helpful_samples, c.fewshot_examples) == (1, 4, 2, 2)
    assert c.helpful_ratio == pytest.approx(135 / 183) and c.sft == {"epochs": 1.0}
    assert (c.train_on, c.train_from, c.helpful_source) == ("final", "base", "model")
    tiny = load_job_config(TINY, [f"output_dir={tmp_path}"])
    assert tiny.sft["epochs"] == 1.0 and tiny.sft["max_steps"] == 2 and tiny.revisions == 2
    real = load_job_config("jobs/constitutional_sl.yaml")
    assert (real.model, real.revisions) == ("smollm2-135m", 4)
    assert load_all_jobs().get("constitutional_sl").kind == "loop"


@pytest.mark.parametrize(
    "override,field",
    [
        ("revisions=0", "revisions"),
        ("sft.model=tiny", "model"),
        ("train_on=first", "train_on"),
        ("helpful_ratio=-1", "helpful_ratio"),
        ("principles=x", "principles"),
    ],
)
def test_bad_settings_rejected_before_work(tmp_path, override, field):
    with pytest.raises(ConfigError, match=field):
        load_job_config(TINY, [f"output_dir={tmp_path}", override])


def test_preflight_names_the_bad_file_field(tmp_path):
    job = SL.ConstitutionalSL()
    bad = _jsonl(tmp_path, "c.jsonl", ["{oops"])
    for field in ("constitution", "red_team", "fewshot"):
        c = load_job_config(TINY, [f"output_dir={tmp_path}", f"{field}={bad}"])
        with pytest.raises(ConfigError, match=f"field '{field}': .*line 1: not JSON"):
            job.preflight(c)
    c = load_job_config(TINY, [f"output_dir={tmp_path}", f"red_team={tmp_path}/none.jsonl"])
    with pytest.raises(ConfigError, match="field 'red_team'"):
        job.preflight(c)


# -- the RL stage's labels (recorded log-probabilities) --


def test_rl_questions_principles_and_soft_labels():
    cons = C.load_constitution()
    ps = RL.principles_for(cons, "pair-1", 3, 0)
    assert len({p.name for p in ps}) == 3 and ps == RL.principles_for(cons, "pair-1", 3, 0)
    assert len(RL.principles_for(cons, "pair-1", 40, 0)) == 16
    qs = RL.questions("Q?", "r0", "r1", ps[:1], both_orders=True)
    assert [q["order"] for q in qs] == ["01", "10"]
    assert "(A) r0\n(B) r1" in qs[0]["text"] and "(A) r1\n(B) r0" in qs[1]["text"]
    assert ps[0].choice in qs[0]["text"] and qs[0]["text"].endswith("The answer is:")
    assert len(RL.questions("Q?", "r0", "r1", ps, both_orders=False)) == 3
    # P(r0 better): P(A) in order 01, P(B) in order 10, averaged
    js = [
        {"principle": "x", "order": "01", "p_a": 0.8},
        {"principle": "x", "order": "10", "p_a": 0.4},
    ]
    assert RL.soft_label(js) == pytest.approx((0.8 + 0.6) / 2)
    assert RL.position_consistency(js) == 1.0  # both pick r0
    js[1]["p_a"] = 0.7  # order 10 picks (A) = r1: the two orders disagree
    assert RL.position_consistency(js) == 0.0
    assert RL.position_consistency(js[:1]) is None


def test_rl_preference_rows_and_figures():
    lab = {
        "id": "l1",
        "prompt": "Q",
        "response_0": "a",
        "response_1": "b",
        "p_0": 0.3,
        "judgements": json.dumps([{"principle": "x", "order": "01", "p_a": 0.3}]),
        "source": "given",
    }
    row = RL.preference_row(lab, "fp", 0, "run")
    assert (row["chosen"], row["rejected"]) == ("b", "a")
    assert (row["score_chosen"], row["score_rejected"]) == pytest.approx((0.7, 0.3))
    figs = RL.label_figures([lab, {**lab, "p_0": 0.9}])
    assert figs["labelled"] == 2 and figs["agreement_with_given_order"] == 0.5
    assert figs["mean_confidence"] == pytest.approx((0.2 + 0.4) / 2)
    assert "position_consistency" not in figs
    assert RL.label_figures([]) == {"labelled": 0}


def test_rl_config_and_preflight(tmp_path):
    c = load_job_config("jobs/tiny/constitutional_rl.yaml", [f"output_dir={tmp_path}"])
    assert (c.principles_per_pair, c.both_orders, c.train) == (2, True, "dpo")
    assert c.dpo["beta"] == 0.1 and c.dpo["max_steps"] == 2
    d = ConstitutionalRLConfig(output_dir=str(tmp_path))
    assert (d.principles_per_pair, d.both_orders, d.feedback_model) == (1, False, None)
    assert load_all_jobs().get("constitutional_rl").kind == "loop"
    job = RL.ConstitutionalRL()
    empty = _jsonl(tmp_path, "prefs.jsonl", [{"prompt": "p", "chosen": "", "rejected": "r"}])
    c = load_job_config(
        "jobs/tiny/constitutional_rl.yaml", [f"output_dir={tmp_path}", f"pairs={empty}"]
    )
    with pytest.raises(ConfigError, match="field 'pairs': no usable preference rows"):
        job.preflight(c)
    good = _jsonl(tmp_path, "ok.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    c = load_job_config(
        "jobs/tiny/constitutional_rl.yaml", [f"output_dir={tmp_path}", f"pairs={good}"]
    )
    job.preflight(c)
    assert job._given(c) == [{"prompt": "p", "chosen": "c", "rejected": "r"}]


@pytest.mark.parametrize(
    "override,field",
    [
        ("reward.loss=pairwise", "loss"),
        ("reward.learning_rate=0", "learning_rate"),
        ("dpo.ref_model=tiny", "ref_model"),
        ("train=ppo", "train"),
        ("principles_per_pair=0", "principles_per_pair"),
    ],
)
def test_rl_bad_settings_rejected_before_work(tmp_path, override, field):
    with pytest.raises(ConfigError, match=field):
        load_job_config("jobs/tiny/constitutional_rl.yaml", [f"output_dir={tmp_path}", override])
