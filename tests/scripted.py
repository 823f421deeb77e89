"""A scripted engine for tests where the engine is not what is tested (the generation stage's
bookkeeping, the rounds driver): completions come from a function of the prompt, through a real
Ray Data ``map_batches``, with the engine contract's columns (``synth_ray.engines.base``).

Not registered in ``ENGINES``: tests build it directly (``ScriptedEngine(script)``), so the
known-engine lists the CLI prints stay those of the library. ``calls`` and ``rows_sent`` count,
on the driver, the ``generate`` calls that reached the engine and the rows they carried.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal

import pyarrow as pa

from synth_ray.engines.base import Engine, EngineConfig, finish_reason
from synth_ray.models.resolve import ResolvedModel


class ScriptedEngineConfig(EngineConfig):
    type: Literal["scripted"] = "scripted"


class ScriptError(Exception):
    """Raised by a script: the row becomes an error row with this message."""


def _respond(batch: pa.Table, script: Callable[[str], str], model: str) -> pa.Table:
    completions, errors, ptoks, ctoks, reasons = [], [], [], [], []
    for prompt, sampling in zip(
        batch.column("prompt").to_pylist(), batch.column("sampling").to_pylist()
    ):
        try:
            text, err = script(prompt), None
        except ScriptError as exc:
            text, err = "", str(exc)
        max_tokens = int(json.loads(sampling).get("max_tokens", 256))
        n = 0 if err else len(text.split())
        completions.append(text)
        errors.append(err)
        ptoks.append(len(prompt.split()))
        ctoks.append(n)
        reasons.append(finish_reason(err, n, max_tokens))
    cols = {
        "completion": pa.array(completions, pa.string()),
        "finish_reason": pa.array(reasons, pa.string()),
        "prompt_tokens": pa.array(ptoks, pa.int64()),
        "completion_tokens": pa.array(ctoks, pa.int64()),
        "error": pa.array(errors, pa.string()),
        "model": pa.array([model] * batch.num_rows, pa.string()),
        "engine_s": pa.array([0.0] * batch.num_rows, pa.float64()),
    }
    for name, col in cols.items():
        batch = batch.append_column(name, col)
    return batch


class ScriptedEngine(Engine):
    config_cls = ScriptedEngineConfig
    name = "scripted"

    def __init__(self, script: Callable[[str], str], model: str = "scripted"):
        super().__init__(ScriptedEngineConfig(), ResolvedModel(model, model, "served"))
        self.script = script
        self.calls = 0
        self.rows_sent = 0

    def generate(self, ds, input_kind="prompt", num_rows=None):
        self.calls += 1
        self.rows_sent += num_rows if num_rows is not None else ds.count()
        return super().generate(ds, input_kind, num_rows)

    def _generate(self, ds, input_kind, num_rows=None):
        assert input_kind == "prompt", input_kind
        return ds.map_batches(
            _respond,
            fn_kwargs={"script": self.script, "model": self.model.name},
            batch_format="pyarrow",
            num_cpus=0.25,
        )


def job_context(engine: Engine, out_dir, run_id: str | None = None):
    """A job context on ``out_dir`` with ``engine`` and a fresh run record (a new run id per call,
    as each ``synth-ray run`` has). The one place the stage tests build what the stages take."""
    from synth_ray.io.layout import OutputLayout
    from synth_ray.job import JobContext
    from synth_ray.runinfo import RunRecord

    layout = OutputLayout.at(str(out_dir))
    layout.make()
    record = RunRecord(layout, {}, run_id)
    return JobContext(config=None, layout=layout, record=record, model=engine.model, engine=engine)
