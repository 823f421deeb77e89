"""The generic ``tasks`` job's bookkeeping (``synth_ray.tasks.job``) on a scripted engine through
a real Ray Data pipeline: a chain of steps (Evol-Instruct, 2 generations, the cheap
equality rule; the LLM equality step runs in the vLLM end-to-end test), each step's rows, rejects with reasons, parents carried back, lineage, the dataset, and
a rerun that regenerates nothing and rewrites the same rows and rejects.

The engine is not under test: ``tests/scripted.py`` answers from a function of the prompt (the
session's ``ray_local``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth_ray.io.layout import read_parquet_dir
from synth_ray.io.rejects import read_rejects
from synth_ray.tasks.job import TasksConfig, TasksJob
from tests.scripted import ScriptedEngine, job_context

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def script(prompt: str) -> str:
    if "#Rewritten Prompt#:" in prompt:
        given = prompt.split("#Original Prompt#:\n", 1)[1].split("\n\n#Rewritten Prompt#", 1)[0]
        if "capital" in given:
            return "#Rewritten Prompt#: name the capital"  # copies the prompt's marker
        if "sky" in given:
            return given  # adds no information
        return f"{given} Justify each step with an example."
    if "#New Prompt#:" in prompt:
        return "Describe a mineral that forms only in deep caves."
    if "bakery" in prompt:
        return "Sorry, I cannot."
    return f"A detailed answer: {prompt[:40]}"


ROWS = [
    {
        "id": "a",
        "instruction": "Explain why the sky is blue.",
        "input": "",
        "output": "Scattering.",
    },
    {"id": "b", "instruction": "Name the capital of Australia.", "output": "Canberra."},
    {"id": "c", "instruction": "Suggest a name for a bakery.", "output": "Crumbs."},
    {"id": "d", "instruction": "Translate into French.", "input": "The cat sleeps."},
    {"id": "e", "input": "no instruction here"},  # rejected: missing_column:instruction
]


def _config(inp: Path, out: Path) -> TasksConfig:
    return TasksConfig(
        input=str(inp),
        output_dir=str(out),
        prompt_format="raw",
        dataset="all",
        tasks=[{"name": "evol_instruct", "generations": 2, "equality": "rule", "seed": 3}],
    )


def _run(cfg: TasksConfig, engine: ScriptedEngine, out: Path) -> dict:
    ctx = job_context(engine, out)
    ctx.config = cfg
    TasksJob().preflight(cfg)
    TasksJob().run(ctx)
    return ctx.record.counts


def _steps(out: Path) -> dict[str, list[dict]]:
    res = {}
    for d in sorted((out / "steps").iterdir()):
        t = read_parquet_dir(str(d))
        rows = [] if t is None else t.to_pylist()
        res[d.name] = sorted(
            ({**r, "row": json.loads(r["row"])} for r in rows), key=lambda r: r["id"]
        )
    return res


def test_chain_rejects_carry_lineage_and_resume(ray_local, tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "out"
    cfg = _config(inp, out)
    engine = ScriptedEngine(script)
    counts = _run(cfg, engine, out)

    names = list(counts["steps"])
    assert names == [
        "s01-evol_instruct.evolve-g1",
        "s02-evol_instruct.respond-g1",
        "s03-evol_instruct.evolve-g2",
        "s04-evol_instruct.respond-g2",
    ]
    assert counts["input_rows"] == 5
    steps = _steps(out)
    ev1 = {r["parent_id"]: r for r in steps[names[0]]}
    s1 = counts["steps"][names[0]]
    # 5 rows in, 4 requests (e lacks its instruction); b copies the marker, a (about the sky)
    # comes back unchanged unless its operation was in-breadth: both carried back as they were
    a_same = ev1["a"]["row"]["id"] == "a"
    assert a_same == (ev1["a"]["row"].get("operation") is None)
    assert s1["rows_in"] == 5 and s1["requests"] == 4
    assert s1["rejects_by_reason"] == {
        "missing_column:instruction": 1,
        "copies_evolving_prompt": 1,
        **({"no_information_gain": 1} if a_same else {}),
    }
    assert (s1["new"], s1["carried"]) == (3 - a_same, 1 + a_same)
    assert ev1["b"]["origin"] == "carried" and ev1["b"]["row"]["id"] == "b"
    assert ev1["b"]["row"]["carried"] is True and ev1["b"]["row"]["instruction"].startswith("Name")
    for pid in ("a", "c", "d") if not a_same else ("c", "d"):
        row = ev1[pid]["row"]
        assert row["generation"] == 1 and row["parent_id"] == pid
        assert row["operation"] in (
            "add_constraints",
            "deepen",
            "concretize",
            "increase_reasoning",
            "complicate_input",
            "in_breadth",
        )
    # respond: the bakery answer says sorry (short) -> eliminated, its parent carried
    resp = counts["steps"][names[1]]
    c_breadth = ev1["c"]["row"]["operation"] == "in_breadth"
    assert resp["rejects_by_reason"].get("response_sorry", 0) == int(not c_breadth)
    assert resp["passed"] == 1 + a_same  # carried rows are not answered
    final = steps[names[1]]
    # parents put back (by evolve, then passed through respond; or by respond)
    assert {r["row"]["id"] for r in final if r["row"].get("carried")} == {"b"} | (
        {"a"} if a_same else set()
    ) | (set() if c_breadth else {"c"})
    for r in final:
        if r["origin"] == "parsed":
            assert r["row"]["output"].startswith("A detailed answer") and "parent" not in r["row"]

    # generation 2 evolves every row of generation 1's output, evolved or carried back
    assert counts["steps"][names[2]]["rows_in"] == len(final)
    g2 = [r for r in steps[names[2]] if r["origin"] == "parsed"]
    assert g2 and all(r["row"]["generation"] == 2 for r in g2)
    assert {r["parent_id"] for r in steps[names[2]]} == {r["id"] for r in final}

    dataset = read_parquet_dir(str(out / "dataset")).to_pylist()
    assert counts["dataset_rows"] == len(dataset) > 0
    for d in dataset:
        extra = json.loads(d["extra"])
        assert d["method"] == "evol_instruct" and d["round"] in (1, 2)
        assert extra["generation"] == d["round"] and d["seed_ids"] == [extra["parent_id"]]
    assert {d["round"] for d in dataset} == {1, 2}
    assert engine.calls == 4

    rejects_before = sorted(map(str, read_rejects(str(out / "rejects")).to_pylist()))
    again = ScriptedEngine(script)
    counts2 = _run(cfg, again, out)
    assert again.calls == 0  # nothing pending: the engine is never called
    for name in names:
        g = counts2["generation"][name]
        assert g["generated"] == 0 and g["skipped_done"] == g["requested"]
        for key in ("rows_in", "requests", "new", "carried", "passed", "rejects_by_reason"):
            assert counts2["steps"][name][key] == counts["steps"][name][key], (name, key)
    assert _steps(out) == steps
    assert sorted(map(str, read_rejects(str(out / "rejects")).to_pylist())) == rejects_before
    assert sorted(r["id"] for r in read_parquet_dir(str(out / "dataset")).to_pylist()) == sorted(
        d["id"] for d in dataset
    )
