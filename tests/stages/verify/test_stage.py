"""The verify stage: config, the batch function alone (fast), and on a real local Ray with
hostile programs among the rows (slow, ray): the actor and the job go on, every row comes out
with its reward and reason."""

from __future__ import annotations

import gzip
import json
import os

import pyarrow as pa
import pytest
from pydantic import ValidationError

from synth_ray.stages.verify.stage import VerifyBatch, VerifyStageConfig, verify_rows

from ...conftest import SHARED_DATA
from .sandbox_util import limits_config, require_isolation, sandbox_processes
from .test_hostile import HOSTILE, PROBLEM


def _humaneval(n: int) -> list[dict]:
    with gzip.open(SHARED_DATA / "humaneval.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f][:n]
    return [
        {
            "id": r["task_id"],
            "prompt": r["prompt"],
            "entry_point": r["entry_point"],
            "test": r["test"],
            "output": r["canonical_solution"],
        }
        for r in rows
    ]


def _hostile(names: list[str]) -> list[dict]:
    return [
        {"id": f"hostile/{n}", **PROBLEM, "output": (HOSTILE / f"{n}.py").read_text()}
        for n in names
    ]


def test_config():
    c = VerifyStageConfig(verifier="code", code={"sandbox": {"wall_s": 3}})
    assert c.verifier_config().sandbox.wall_s == 3
    with pytest.raises(ValidationError, match="unknown verifier 'lean'; known: code, math"):
        VerifyStageConfig(verifier="lean")
    with pytest.raises(ValidationError, match="Extra inputs"):
        VerifyStageConfig(verifier="math", math={"tolerance": 0.1})


def test_batch_function_records_reward_and_reason():
    """No Ray: the callable class on one Arrow batch, rows without output included."""
    rows = [
        {"question": "q1", "answer": "x\n#### 12", "output": "3*4 = 12\n#### 12"},
        {"question": "q2", "answer": "#### 1,000", "output": "The answer is $1000."},
        {"question": "q3", "answer": "#### 5", "output": "The answer is 6"},
        {"question": "q4", "answer": "#### 5", "output": None},
    ]
    fn = VerifyBatch(VerifyStageConfig(verifier="math").model_dump())
    out = fn(pa.Table.from_pylist(rows)).to_pylist()
    assert [r["reward"] for r in out] == [1, 1, 0, 0]
    assert [r["verify_reason"].split(":")[0] for r in out] == [
        "correct",
        "correct",
        "wrong_answer",
        "no_output",
    ]
    assert {r["verifier"] for r in out} == {"math"}
    assert [r["question"] for r in out] == ["q1", "q2", "q3", "q4"]  # every row, in order


class PidVerify(VerifyBatch):
    """The stage's class, also recording which process verified each row."""

    def __call__(self, batch):
        out = super().__call__(batch)
        return out.append_column("actor_pid", pa.array([os.getpid()] * out.num_rows))


@pytest.mark.slow
@pytest.mark.ray
def test_hostile_rows_through_ray_data(ray_local):
    if not (SHARED_DATA / "humaneval.jsonl.gz").exists():
        pytest.skip("humaneval.jsonl.gz absent")
    require_isolation()
    import ray

    hostile = ["fork_bomb", "kill_parent", "kill_everything", "memory_bomb", "read_credentials"]
    rows = _hostile(hostile[:3]) + _humaneval(3) + _hostile(hostile[3:]) + _humaneval(6)[3:]
    config = VerifyStageConfig(
        verifier="code",
        code={"sandbox": limits_config().model_dump(), "threads": 2},
        batch_size=2,
        concurrency=1,
    )
    ds = ray.data.from_items(rows, override_num_blocks=4)
    out = ds.map_batches(
        PidVerify,
        fn_constructor_kwargs={"config": config.model_dump()},
        batch_size=config.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=config.num_cpus,
    ).take_all()
    by_id = {r["id"]: r for r in out}
    assert len(out) == len(rows) and set(by_id) == {r["id"] for r in rows}
    for n in hostile:
        r = by_id[f"hostile/{n}"]
        assert r["reward"] == 0 and r["verify_reason"], r
    assert by_id["hostile/fork_bomb"]["verify_reason"].startswith(("wall_time", "cpu_time"))
    assert by_id["hostile/memory_bomb"]["verify_reason"].startswith("memory_limit")
    assert "PermissionError" in by_id["hostile/kill_parent"]["verify_reason"]
    for r in out:
        if not r["id"].startswith("hostile/"):
            assert (r["reward"], r["verify_reason"]) == (1, "tests_passed"), r
    # One actor verified every row: it was never killed and restarted.
    pids = {r["actor_pid"] for r in out}
    assert len(pids) == 1
    os.kill(pids.pop(), 0)  # and it is still alive after the job
    assert sandbox_processes() == []

    # The stage's own entry point, on math rows, in the same Ray session.
    gsm = [json.loads(x) for x in (SHARED_DATA / "gsm8k_test.jsonl").read_text().splitlines()[:12]]
    math_rows = [{**g, "output": g["answer"] if i % 2 else "#### -1"} for i, g in enumerate(gsm)]
    got = verify_rows(ray.data.from_items(math_rows), VerifyStageConfig(verifier="math")).take_all()
    assert sorted(r["reward"] for r in got) == [0] * 6 + [1] * 6
