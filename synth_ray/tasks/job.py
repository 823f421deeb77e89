"""The ``tasks`` job: any chain of per-row tasks (``synth_ray.tasks.base``) over any JSONL or
Parquet input, streamed through Ray Data with the generation stage every job uses.

For each step k (a configured task, or one part of a chain task such as an Evol-Instruct
generation)::

    rows (step 1: the input files, read as ``synth_ray.tasks.read``; else step k-1's output)
      -> requests   (columns checked: a missing one is a ``missing_column:<name>`` reject;
                     rows the task skips pass through; ids hash the step, the task's config
                     and templates, the row, the model, the sampling and the prompt format)
      -> generate_pending (skip ids already in data/<step>/; engine; append)   [resume]
      -> parse      (each completion: output rows, or rejects with reasons, maybe carrying
                     a row on)
      -> steps/<step>/   (Parquet: id, parent_id, origin, step, request_id, row JSON)

The input's columns are checked against the chain before any work (``preflight``): a column
that step k needs and neither the input nor steps 1..k-1 provide stops the job naming it.
A rerun regenerates nothing that is done and rewrites every step's rows and rejects from what
is stored (a step's rejects are replaced, not added to). ``OUTPUT_DIR/dataset/`` gets the
instruction records (``instruction``, ``input``, ``output`` and lineage) of the last step's rows
or every step's (``dataset``), for ``synth-ray export`` and the trainers. One engine serves
every step (``engine.lifetime: run`` unless set).
"""

from __future__ import annotations

import json
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from synth_ray.config import ConfigError
from synth_ray.io import fs
from synth_ray.io.ids import stable_hash
from synth_ray.io.layout import read_parquet_dir
from synth_ray.io.readers import InputError, ReadOptions, find_inputs
from synth_ray.io.rejects import drop_stage, read_rejects, reject, write_rejects
from synth_ray.io.rows import MESSAGES
from synth_ray.job import JOBS, GenerationJobConfig, Job, JobContext
from synth_ray.stages.generate import generate_pending
from synth_ray.stages.prompt import (
    PROMPT_FORMAT_HELP,
    PromptFormat,
    apply_prompt_format,
    user_messages,
)
from synth_ray.stages.records import error_reason, record_id, write_dataset
from synth_ray.stages.rounds import GenerationCounters
from synth_ray.tasks.base import Task, TaskSpec, build_chain, chain_problems, row_json
from synth_ray.tasks.read import input_columns, read_task_rows

STEP_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("parent_id", pa.string()),  # the row the step read
        ("origin", pa.string()),  # parsed (new) | carried (put back) | passed (skipped)
        ("step", pa.string()),
        ("request_id", pa.string()),
        ("row", pa.string()),  # the row, JSON
    ]
)


def _request_schema(kind: str) -> pa.Schema:
    text = ("messages", MESSAGES) if kind == "messages" else ("prompt", pa.string())
    return pa.schema(
        [("id", pa.string()), text, ("sampling", pa.string()), ("row", pa.string())]
        + [("parent_id", pa.string())]
    )


class TasksConfig(GenerationJobConfig):
    method: Literal["tasks"] = Field("tasks", description="A chain of per-row tasks.")
    input: str | list[str] = Field(
        description="Rows: JSONL (plain, .gz, .zst, .bz2 or .xz) or Parquet files, folders, "
        "globs or URIs, mixed freely; any columns."
    )
    id_field: str | None = Field(
        "id", description="Field holding a row's id (else '<file name>:<line>')."
    )
    max_row_bytes: int = Field(
        1_000_000, ge=1, description="Rows larger than this (as JSON, UTF-8) are rejected."
    )
    tasks: list[TaskSpec] = Field(
        min_length=1,
        description="The tasks, in order: each one's output rows are the next one's input. "
        "Each is {name: <task>, ...its options} (`synth-ray tasks` lists them).",
    )
    prompt_format: PromptFormat = Field("auto", description=PROMPT_FORMAT_HELP)
    dataset: Literal["last", "all", "off"] = Field(
        "last",
        description="OUTPUT_DIR/dataset/ (instruction records): from the last step's new rows, "
        "from every step's new rows (duplicates by content once), or not written. Rows without "
        "a non-empty instruction and output are left out.",
    )


def step_name(k: int, task: Task) -> str:
    return f"s{k:02d}-{task.label}"


def _rows_of(batch: pa.Table) -> list[dict]:
    col = "row" if "row" in batch.column_names else "text"
    return [json.loads(s) for s in batch.column(col).to_pylist()]


def build_requests(batch: pa.Table, task: Task, step: str, env: dict) -> pa.Table:
    """Ray Data UDF: rows -> the step's requests; rows missing a column become rejects."""
    out, rejects = [], []
    for row in _rows_of(batch):
        if task.skip(row):
            continue
        missing = task.missing_columns(row)
        if missing:
            detail = f"task {task.label} needs {missing}; the row has {sorted(row)[:20]}"
            rejects.append(
                reject(
                    step,
                    f"missing_column:{missing[0]}",
                    stage=step,
                    id=row.get("id"),
                    detail=detail,
                )
            )
            continue
        try:
            prompt = task.prompt(row)
        except (KeyError, TypeError, ValueError) as exc:
            rejects.append(
                reject(step, "prompt_error", stage=step, id=row.get("id"), detail=str(exc))
            )
            continue
        sampling, rj = task.sampling_json(row), row_json(row)
        rid = stable_hash(step, env["task_fp"], rj, env["model_id"], sampling, env["kind"])
        req = {"id": f"{step}-{rid}", "sampling": sampling, "row": rj, "parent_id": row.get("id")}
        if env["kind"] == "messages":
            req["messages"] = user_messages(prompt)
        else:
            req["prompt"] = prompt
        out.append(req)
    write_rejects(env["rejects"], rejects, f"{step}-validate")
    return pa.Table.from_pylist(out, schema=_request_schema(env["kind"]))


def passed_rows(batch: pa.Table, task: Task, step: str) -> pa.Table:
    """Ray Data UDF: the rows the task skips, unchanged."""
    out = [
        {
            "id": r.get("id"),
            "parent_id": r.get("id"),
            "origin": "passed",
            "step": step,
            "request_id": None,
            "row": row_json(r),
        }
        for r in _rows_of(batch)
        if task.skip(r)
    ]
    return pa.Table.from_pylist(out, schema=STEP_SCHEMA)


def parse_generations(batch: pa.Table, task: Task, step: str, rejects_dir: str, wanted) -> pa.Table:
    """Ray Data UDF: generation rows -> the step's output rows; rejects written."""
    import ray

    out, rejects = [], []
    if isinstance(wanted, ray.ObjectRef):  # the ids, put once in the object store
        wanted = ray.get(wanted)
    keep = pc.is_in(batch.column("request_id"), pa.array(sorted(wanted), pa.string()))
    for g in batch.filter(keep).to_pylist():
        row = json.loads(g["row"])
        if g["error"]:
            rejects.append(
                reject(step, error_reason(g["error"]), stage=step, id=g["id"], detail=g["error"])
            )
            continue
        parsed = task.parse(row, g["completion"] or "", g)
        for origin, rows in (("parsed", parsed.rows), ("carried", parsed.carried)):
            for j, r in enumerate(rows):
                r = dict(r)
                r.setdefault("id", f"{task.label}-{stable_hash(g['id'], origin, j, length=20)}")
                out.append(
                    {
                        "id": r["id"],
                        "parent_id": row.get("id"),
                        "origin": origin,
                        "step": step,
                        "request_id": g["request_id"],
                        "row": row_json(r),
                    }
                )
        for reason, detail in parsed.rejects:
            rejects.append(reject(step, reason, stage=step, id=g["id"], detail=detail))
    write_rejects(rejects_dir, rejects, f"{step}-parse")
    return pa.Table.from_pylist(out, schema=STEP_SCHEMA)


@JOBS.register("tasks")
class TasksJob(Job):
    """Any chain of per-row tasks over JSONL/Parquet rows (Evol-Instruct, ...)."""

    config_cls = TasksConfig
    engine_lifetime = "run"

    def preflight(self, config: TasksConfig) -> None:
        try:
            columns = input_columns(config.input)
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        steps = build_chain(config.tasks)
        for path, cols in columns.items():
            problems = chain_problems(steps, cols)
            if problems:
                raise ConfigError(f"field 'tasks': input {path}: {problems[0]}")
        chain_problems(steps, None)

    def run(self, ctx: JobContext) -> None:
        cfg: TasksConfig = ctx.config  # type: ignore[assignment]
        rec, layout = ctx.record, ctx.layout
        fmt = apply_prompt_format(ctx, cfg.prompt_format)
        steps = build_chain(cfg.tasks)
        find_inputs(cfg.input)
        with rec.stage("read"):
            opts = ReadOptions("text", cfg.id_field, cfg.max_row_bytes, layout.rejects)
            rows = read_task_rows(cfg.input, opts)
            rec.counts["input_rows"] = rows.count()
        counters = GenerationCounters(rec)
        info = rec.counts.setdefault("steps", {})
        outputs = []
        for k, task in enumerate(steps, start=1):
            name = step_name(k, task)
            with rec.stage(f"step:{name}"):
                info[name], out_dir = run_step(ctx, task, name, rows, fmt.input_kind, counters)
            outputs.append(out_dir)
            if info[name]["rows_out"] == 0:
                break
            import ray.data

            rows = ray.data.read_parquet(out_dir)
        if cfg.dataset != "off":
            with rec.stage("write_dataset"):
                picked = outputs if cfg.dataset == "all" else outputs[-1:]
                rec.counts["dataset_rows"] = write_dataset(
                    layout.sub("dataset"), dataset_rows(picked, ctx)
                )


def run_step(ctx: JobContext, task: Task, name: str, rows, kind: str, counters) -> tuple[dict, str]:
    """One step: requests, generation (resumed), parse; returns (counts, output folder)."""
    layout = ctx.layout
    dropped = drop_stage(layout.rejects, name)  # this step decides afresh
    env = {
        "task_fp": task.fingerprint(),
        "model_id": ctx.engine.model.fingerprint,
        "kind": kind,
        "rejects": layout.rejects,
    }
    requests = rows.map_batches(
        build_requests, fn_kwargs={"task": task, "step": name, "env": env}, batch_format="pyarrow"
    ).materialize()
    wanted = set(requests.unique("id")) if requests.count() else set()
    data_dir = layout.sub(f"data/{name}")
    stats = generate_pending(ctx.engine, requests, data_dir, ctx.run_id, kind)
    counters.add(name, stats)
    out_dir = layout.sub(f"steps/{name}")
    if fs.exists(out_dir):
        for f in fs.list_files(out_dir):
            fs.delete_file(f)
    passed = rows.map_batches(
        passed_rows, fn_kwargs={"task": task, "step": name}, batch_format="pyarrow"
    )
    parts = [passed]
    if wanted and fs.list_files(data_dir, (".parquet",)):
        import ray
        import ray.data

        parsed = ray.data.read_parquet(data_dir).map_batches(
            parse_generations,
            fn_kwargs={
                "task": task,
                "step": name,
                "rejects_dir": layout.rejects,
                "wanted": ray.put(wanted),
            },
            batch_format="pyarrow",
        )
        parts.append(parsed)
    out = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    out.write_parquet(out_dir)
    t = read_parquet_dir(out_dir, columns=["origin"])
    origins = t.column("origin").to_pylist() if t is not None else []
    by_reason: dict[str, int] = {}
    rej = read_rejects(layout.rejects)
    rej = rej.filter(pc.equal(rej.column("stage"), name))
    for r in rej.column("reason").to_pylist():
        by_reason[r] = by_reason.get(r, 0) + 1
    counts = {
        "rows_in": rows.count(),
        "requests": len(wanted),
        "rows_out": len(origins),
        "new": origins.count("parsed"),
        "carried": origins.count("carried"),
        "passed": origins.count("passed"),
        "rejected": sum(by_reason.values()),
        "rejects_by_reason": by_reason,
        "rejects_replaced": dropped,
    }
    return counts, out_dir


def dataset_rows(step_dirs: list[str], ctx: JobContext) -> list[dict]:
    """Instruction records of the steps' new rows (content duplicates once)."""
    out: dict[str, dict] = {}
    for d in step_dirs:
        t = read_parquet_dir(d)
        if t is None:
            continue
        for s in t.filter(pc.equal(t.column("origin"), "parsed")).to_pylist():
            r = json.loads(s["row"])
            ins, inp, outp = r.get("instruction"), r.get("input") or "", r.get("output")
            if not (
                isinstance(ins, str) and ins.strip() and isinstance(outp, str) and outp.strip()
            ):
                continue
            method = r.get("method") or s["step"].split("-", 1)[1]
            rid = record_id(method, ins, inp if isinstance(inp, str) else "", outp)
            lineage = {k: r[k] for k in ("parent_id", "operation", "generation") if k in r}
            parent = r.get("parent_id") or s["parent_id"]  # the row's own lineage first
            out.setdefault(
                rid,
                {
                    "id": rid,
                    "instruction": ins,
                    "input": inp if isinstance(inp, str) else json.dumps(inp),
                    "output": outp,
                    "method": method,
                    "round": int(r.get("generation") or 0),
                    "seed_ids": [parent] if parent else [],
                    "request_id": s["request_id"],
                    "model": ctx.model.name,
                    "run_id": ctx.run_id,
                    "extra": {**lineage, "step": s["step"], "row_id": s["id"]},
                },
            )
    return list(out.values())
