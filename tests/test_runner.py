"""The runner's error paths (``synth_ray.runner``): configuration errors stop a job before any
work, naming the field and listing what is known; a run records ``status: running`` before any
work (so a killed run shows as such); a run that fails records ``status: failed`` and the error
in run.json (and in ``runs/<run_id>.json``) and re-raises."""

from __future__ import annotations

import json
from typing import Literal

import pytest

from synth_ray import runner
from synth_ray.config import ConfigError
from synth_ray.job import JOBS, Job, JobConfig, load_all_jobs
from synth_ray.runner import load_job_config, run_job

from .conftest import REPO

WRAP = {"method": "wrap", "input": str(REPO / "examples/c4_sample.jsonl")}


def test_missing_method_field_lists_the_known_methods(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_job_config(data={"output_dir": str(tmp_path)})
    known = ", ".join(load_all_jobs().names())
    assert str(exc.value) == f"config: field 'method' is required; known: {known}"
    assert {"wrap", "self_instruct", "alpaca", "unnatural"} <= set(load_all_jobs().names())


def test_unknown_method_names_the_file_and_lists_the_known_ones(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(f"method: wrpa\noutput_dir: {tmp_path / 'out'}\n")
    with pytest.raises(ConfigError) as exc:
        load_job_config(str(path))
    known = ", ".join(load_all_jobs().names())
    assert str(exc.value) == f"{path}: field 'method': unknown method 'wrpa'; known: {known}"


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"outptu_dir": "/tmp/x"}, "outptu_dir"),  # a misspelt field
        ({"engine": {"type": "vllm", "replicas": "two"}}, "engine.replicas"),
        ({"sampling": {"temperature": -1}}, "sampling.temperature"),
    ],
)
def test_bad_field_is_named(tmp_path, extra, field):
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        load_job_config(data={**WRAP, "output_dir": str(tmp_path / "out"), **extra})


@pytest.fixture
def failing_method(monkeypatch):
    """A method registered for this test only; its run records a count, then raises."""

    class FailingConfig(JobConfig):
        method: Literal["failing"] = "failing"

    class Failing(Job):
        config_cls = FailingConfig

        def run(self, ctx):
            with open(ctx.layout.run_json) as f:  # written before any work: a killed run shows
                running = json.load(f)
            assert running["status"] == "running" and running["run_id"] == ctx.run_id
            ctx.record.counts["before_the_failure"] = 1
            raise RuntimeError("the method failed halfway")

    monkeypatch.setitem(JOBS._items, "failing", Failing)
    monkeypatch.setattr(runner, "init_ray", lambda config: None)  # the method needs no Ray
    return Failing


def test_failed_run_is_recorded_and_raised(failing_method, tmp_path):
    out = tmp_path / "out"
    cfg = load_job_config(data={"method": "failing", "output_dir": str(out)})
    with pytest.raises(RuntimeError, match="the method failed halfway"):
        run_job(cfg)
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "failed"
    assert rec["error"] == "RuntimeError: the method failed halfway"
    assert rec["counts"] == {"before_the_failure": 1} and rec["config"]["method"] == "failing"
    assert rec["model"] == {"spec": "tiny", "source": rec["model"]["source"], "kind": "tiny"}
    history = json.loads((out / "runs" / f"{rec['run_id']}.json").read_text())
    assert history["status"] == "failed" and history["error"] == rec["error"]


def test_model_not_found_fails_before_any_work(failing_method, tmp_path):
    """ConfigError naming the field and where the model was looked for; no output folder, no
    run.json, the method never runs, and no Ray (the fast-tier guard in conftest.py would turn a
    ray.init into a RuntimeError, not this ConfigError)."""
    out, model = tmp_path / "out", tmp_path / "models" / "nope"
    cfg = load_job_config(data={"method": "failing", "output_dir": str(out), "model": str(model)})
    with pytest.raises(ConfigError) as exc:
        run_job(cfg)
    assert str(exc.value) == (
        f"field 'model': model '{model}' not found: looked for a local folder at {model}"
    )
    assert not out.exists()
