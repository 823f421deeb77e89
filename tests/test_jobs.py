"""Every shipped job config validates, keeps the paper defaults it claims, and documents its
launch command in a header comment."""

from __future__ import annotations

import pytest

from synth_ray.config import ConfigError
from synth_ray.methods.alpaca import prompts as alpaca_prompts
from synth_ray.methods.self_instruct import prompts as si_prompts
from synth_ray.methods.unnatural import prompts as un_prompts
from synth_ray.runner import load_job_config

from .conftest import REPO

JOBS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "jobs").rglob("*.yaml"))


def test_jobs_found():
    assert {
        "jobs/wrap.yaml",
        "jobs/self_instruct.yaml",
        "jobs/alpaca.yaml",
        "jobs/unnatural.yaml",
        "jobs/tiny/self_instruct.yaml",
        "jobs/tiny/alpaca.yaml",
        "jobs/tiny/unnatural.yaml",
    } <= set(JOBS)


@pytest.mark.parametrize("job", JOBS)
def test_job_validates_and_says_how_to_run(job):
    text = (REPO / job).read_text()
    assert text.startswith("#") and f"synth-ray run {job}" in text
    cfg = load_job_config(str(REPO / job))
    # runs on a fresh machine as is: a model built locally from installed packages
    assert cfg.model in ("tiny", "smollm2-135m")


def test_paper_defaults_in_full_size_jobs():
    si = load_job_config(str(REPO / "jobs/self_instruct.yaml"))
    assert (si.prompt_instructions, si.machine_in_prompt, si.rouge_threshold) == (8, 2, 0.7)
    assert not si.structured_output.enabled
    g = si.sampling.generate
    assert (g.temperature, g.top_p, g.max_tokens, g.presence_penalty) == (0.7, 0.5, 1024, 2.0)
    assert si.sampling.classify.temperature == 0 and si.sampling.classify.max_tokens == 3
    assert {"image", "picture", "graph"} <= set(si.blocklist)
    assert si.sampling.generate.stop == si_prompts.GENERATE_SAMPLING["stop"]

    al = load_job_config(str(REPO / "jobs/alpaca.yaml"))
    assert al.prompt_examples == alpaca_prompts.NUM_PROMPT_INSTRUCTIONS == 3
    assert (al.sampling.temperature, al.sampling.top_p, al.sampling.max_tokens) == (1.0, 1.0, 3072)
    assert al.sampling.stop == alpaca_prompts.SAMPLING["stop"]

    un = load_job_config(str(REPO / "jobs/unnatural.yaml"))
    assert (un.shots, un.combinations) == (3, 5)
    assert un.sampling.example.top_p == 0.99 and un.sampling.output.temperature == 0.0
    assert un.sampling.reformulation.n == un_prompts.NUM_REFORMULATIONS == 2


def test_judge_block_of_the_instruction_jobs():
    for job in ("alpaca", "self_instruct", "unnatural"):
        assert load_job_config(str(REPO / f"jobs/{job}.yaml")).judge is None  # off: the papers'
        cfg = load_job_config(str(REPO / f"jobs/{job}.yaml"), ["judge.rubric=curation5"])
        assert (cfg.judge.scorer, cfg.judge.rubric, cfg.judge.threshold, cfg.judge.url) == (
            "judge",
            "curation5",
            4.0,
            None,
        )  # Backtranslation's self-curation: keep >= 4
    for bad, field in (
        ("judge.rubric=nope", "judge.rubric"),
        ("judge.treshold=3", "judge.treshold"),
        ("judge.scorer=oracle", "judge.scorer"),
    ):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_job_config(str(REPO / "jobs/alpaca.yaml"), [bad])
