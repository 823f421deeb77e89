"""The per-row task contract (``synth_ray.tasks.base``) and the generic job's per-row parts
(``synth_ray.tasks.job``: requests, parsing, preflight), without Ray: column validation, prompt
building, completions into rows or rejects, chaining, registry errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from pydantic import ValidationError

from synth_ray.config import ConfigError
from synth_ray.io.rejects import read_rejects
from synth_ray.tasks.base import (
    TASKS,
    Parsed,
    Task,
    TaskConfig,
    build_chain,
    chain_problems,
    parse_task_config,
)
from synth_ray.tasks.job import (
    STEP_SCHEMA,
    TasksConfig,
    TasksJob,
    build_requests,
    parse_generations,
    passed_rows,
)


class Shout(Task):
    """A test task (not registered): answer = the completion upper-cased; 'bad' rejects."""

    name = "shout"
    input_columns = ("text",)
    output_columns = ("loud",)
    default_sampling = {"temperature": 0.0, "max_tokens": 4}

    def skip(self, row):
        return row.get("skip", False)

    def prompt(self, row):
        return f"Say: {row['text']}"

    def parse(self, row, completion, generation):
        if completion == "bad":
            return Parsed.drop("bad_completion", completion, carry=row)
        return Parsed.keep({**row, "loud": completion.upper()})


class Needs(Task):
    name = "needs"
    input_columns = ("loud", "other")


def _env(tmp_path, kind="prompt"):
    return {"task_fp": "fp", "model_id": "m", "kind": kind, "rejects": str(tmp_path / "rej")}


def _batch(rows):
    return pa.table({"doc_id": [r["id"] for r in rows], "text": [json.dumps(r) for r in rows]})


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown task 'evol'; known: .*evol_instruct"):
        parse_task_config({"name": "evol"})
    with pytest.raises(ValidationError, match="unknown task 'nope'"):
        TasksConfig(input="x.jsonl", output_dir="o", tasks=[{"name": "nope"}])
    assert "evol_instruct" in TASKS.names()


def test_task_options_are_validated_unknown_keys_rejected():
    with pytest.raises(ValidationError, match="generationz"):
        TasksConfig(input="x", output_dir="o", tasks=[{"name": "evol_instruct", "generationz": 2}])
    with pytest.raises(ValidationError, match="at least 1"):
        TasksConfig(input="x", output_dir="o", tasks=[])


def test_requests_validate_columns_skip_and_prompt(tmp_path):
    task = Shout(TaskConfig(name="shout"))
    rows = [
        {"id": "r1", "text": "hi"},
        {"id": "r2", "text": ""},  # empty: missing
        {"id": "r3"},
        {"id": "r4", "text": "x", "skip": True},
    ]
    reqs = build_requests(_batch(rows), task, "s01-shout", _env(tmp_path)).to_pylist()
    assert [json.loads(r["row"])["id"] for r in reqs] == ["r1"]
    assert reqs[0]["prompt"] == "Say: hi" and reqs[0]["parent_id"] == "r1"
    assert json.loads(reqs[0]["sampling"])["max_tokens"] == 4
    assert reqs[0]["id"].startswith("s01-shout-")
    rej = read_rejects(str(tmp_path / "rej")).to_pylist()
    assert sorted((r["id"], r["reason"], r["stage"]) for r in rej) == [
        ("r2", "missing_column:text", "s01-shout"),
        ("r3", "missing_column:text", "s01-shout"),
    ]
    passed = passed_rows(_batch(rows), task, "s01-shout").to_pylist()
    assert [p["id"] for p in passed] == ["r4"] and passed[0]["origin"] == "passed"
    # chat form: the same prompt as one user turn; ids are stable and differ by format
    chat = build_requests(_batch(rows[:1]), task, "s01-shout", _env(tmp_path, "messages"))
    msg = chat.to_pylist()[0]
    assert msg["messages"] == [{"role": "user", "content": "Say: hi"}]
    again = build_requests(_batch(rows[:1]), task, "s01-shout", _env(tmp_path)).to_pylist()
    assert again[0]["id"] == reqs[0]["id"] != msg["id"]


def test_parse_completions_into_rows_rejects_and_carried(tmp_path):
    task = Shout(TaskConfig(name="shout"))

    def gen(rid, row, completion, error=None):
        return {
            "id": rid,
            "request_id": rid,
            "row": json.dumps(row),
            "completion": completion,
            "error": error,
            "finish_reason": "stop",
        }

    batch = pa.Table.from_pylist(
        [
            gen("q1", {"id": "a", "text": "x"}, "yes"),
            gen("q2", {"id": "b", "text": "y"}, "bad"),
            gen("q3", {"id": "c", "text": "z"}, "", error="engine timeout"),
            gen("q4", {"id": "d", "text": "w"}, "", error="invalid_request: too long"),
            gen("q5", {"id": "e", "text": "v"}, "stale"),  # not a request of this run
        ]
    )
    wanted = {"q1", "q2", "q3", "q4"}
    out = parse_generations(batch, task, "s01-shout", str(tmp_path / "rej"), wanted)
    assert out.schema == STEP_SCHEMA
    rows = {r["parent_id"]: r for r in out.to_pylist()}
    assert set(rows) == {"a", "b"}
    assert rows["a"]["origin"] == "parsed" and json.loads(rows["a"]["row"])["loud"] == "YES"
    assert rows["b"]["origin"] == "carried" and json.loads(rows["b"]["row"])["id"] == "b"
    reasons = {r["id"]: r["reason"] for r in read_rejects(str(tmp_path / "rej")).to_pylist()}
    assert reasons == {
        "q2": "bad_completion",
        "q3": "generation_error",
        "q4": "invalid_request",
    }


def test_chain_columns_checked_naming_the_missing_one():
    steps = [Shout(TaskConfig(name="shout")), Needs(TaskConfig(name="needs"))]
    assert chain_problems(steps, {"text", "other"}) == []
    (problem,) = chain_problems(steps, {"text"})
    assert "step 2 (needs) needs column 'other'" in problem
    (first,) = chain_problems(steps[:1], {"id", "body"})
    assert "needs column 'text', which the input do not provide (columns: body, id)" in first


def test_chain_task_expands_into_its_generations():
    steps = build_chain([{"name": "evol_instruct", "generations": 2, "equality": "rule"}])
    assert [s.label for s in steps] == [
        "evol_instruct.evolve-g1",
        "evol_instruct.respond-g1",
        "evol_instruct.evolve-g2",
        "evol_instruct.respond-g2",
    ]
    assert len({s.fingerprint() for s in steps}) == 4
    llm = build_chain([{"name": "evol_instruct", "generations": 1}])
    assert [s.label for s in llm][1] == "evol_instruct.equal-g1"


def test_preflight_names_the_missing_column_before_any_work(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": 1, "instruction": "Do it."}\n')
    bad = tmp_path / "bad.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["x"], "prompt": ["Do it."]}), bad)
    ok = TasksConfig(input=str(good), output_dir=str(tmp_path / "o"), tasks=["evol_instruct"])
    TasksJob().preflight(ok)
    cfg = TasksConfig(input=str(bad), output_dir=str(tmp_path / "o"), tasks=["evol_instruct"])
    with pytest.raises(ConfigError, match=r"bad.parquet: step 1 \(evol_instruct.evolve-g1\) "):
        TasksJob().preflight(cfg)
    with pytest.raises(ConfigError, match="no input files"):
        TasksJob().preflight(
            TasksConfig(input=str(tmp_path / "none"), output_dir="o", tasks=["evol_instruct"])
        )
