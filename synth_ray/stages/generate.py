"""Generate what is not done yet, and write it.

Shared by every job: request rows (see ``synth_ray.engines.base``) are expanded per sample,
rows whose id is already in ``OUTPUT_DIR/data`` without an error are skipped (resume), the
rest go through the engine and are appended to ``data/`` with this run's id, one file per
engine batch as it finishes (a killed run loses at most the batches in flight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from synth_ray.engines.base import expand_samples
from synth_ray.io.layout import drop_superseded_errors, id_status, read_parquet_dir

if TYPE_CHECKING:
    import ray.data

    from synth_ray.engines import Engine

_DONE_CACHE: dict = {}


@dataclass
class GenerationStats:
    requested: int = 0  # rows (requests x samples) this run was asked for
    skipped_done: int = 0  # of which already done
    generated: int = 0  # rows this run wrote
    errors: int = 0  # of which failed (error set)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _drop_done(batch: pa.Table, done_ref) -> pa.Table:
    import ray

    key = done_ref.hex()
    if key not in _DONE_CACHE:
        _DONE_CACHE.clear()
        _DONE_CACHE[key] = pa.array(sorted(ray.get(done_ref)), pa.string())
    done = _DONE_CACHE[key]
    if len(done) == 0:
        return batch
    return batch.filter(pc.invert(pc.is_in(batch.column("id"), done)))


def _finalize(batch: pa.Table, run_id: str) -> pa.Table:
    drop = [c for c in ("prompt", "messages") if c in batch.column_names]
    batch = batch.drop_columns(drop)
    return batch.append_column("run_id", pa.array([run_id] * batch.num_rows, pa.string()))


def generate_pending(
    engine: Engine,
    requests: ray.data.Dataset,
    out_dir: str,
    run_id: str,
    input_kind: str = "prompt",
) -> GenerationStats:
    """Generate with ``engine`` the rows of ``requests`` not yet done in ``out_dir``; the rows
    written carry ``run_id``."""
    import ray

    stats = GenerationStats()
    rows = requests.map_batches(expand_samples, batch_format="pyarrow", num_cpus=0.25)
    rows = rows.materialize()  # prompts only (small next to generations): exact counts
    stats.requested = rows.count()
    done, errored = id_status(out_dir)
    pending = rows.map_batches(
        _drop_done, fn_kwargs={"done_ref": ray.put(done)}, batch_format="pyarrow", num_cpus=0.25
    )
    n_pending = pending.count()
    stats.skipped_done = stats.requested - n_pending
    if n_pending == 0:
        return stats
    # One block per engine batch, so every finished batch is written to data/ on its own: a
    # killed run keeps its finished batches and the rerun skips them. Without this an input
    # file's requests stay one block, written only once all of them are generated, and a kill
    # loses everything generated so far (seen: the 8-document job's 120 rows, one file).
    pending = pending.repartition(target_num_rows_per_block=engine.rows_per_call(n_pending))
    out = engine.generate(pending, input_kind, num_rows=n_pending)
    out = out.map_batches(
        _finalize, fn_kwargs={"run_id": run_id}, batch_format="pyarrow", num_cpus=0.25
    )
    out.write_parquet(out_dir)
    drop_superseded_errors(out_dir, errored)  # rows that failed before and were retried

    mine = read_parquet_dir(
        out_dir, columns=["run_id", "error", "prompt_tokens", "completion_tokens"]
    )
    mine = mine.filter(pc.equal(mine.column("run_id"), run_id))
    stats.generated = mine.num_rows
    stats.errors = (
        mine.num_rows - pc.sum(pc.is_null(mine.column("error"))).as_py() if mine.num_rows else 0
    )
    stats.prompt_tokens = int(pc.sum(mine.column("prompt_tokens")).as_py() or 0)
    stats.completion_tokens = int(pc.sum(mine.column("completion_tokens")).as_py() or 0)
    return stats


def generate_rows(
    engine: Engine, rows: list[dict], out_dir: str, run_id: str, input_kind: str = "prompt"
) -> tuple[list[dict], GenerationStats]:
    """Small driver-side stages (iterative jobs): generate ``rows`` (resuming from ``out_dir``)
    and return the generation rows of exactly these requests, sorted by id.

    Request ids should hash the prompt and sampling, so a rerun whose earlier rounds went
    differently never mistakes another prompt's stored completion for this one's.
    """
    import ray.data

    if not rows:
        return [], GenerationStats()
    stats = generate_pending(engine, ray.data.from_items(rows), out_dir, run_id, input_kind)
    return read_generations(out_dir, {r["id"] for r in rows}), stats


def read_generations(out_dir: str, request_ids) -> list[dict]:
    """The generation rows in ``out_dir`` of the requests ``request_ids``, sorted by id; of a
    retried id's rows (an old error beside the new one) the successful one."""
    table = read_parquet_dir(out_dir)
    if table is None:
        return []
    wanted = pa.array(sorted(request_ids), pa.string())
    table = table.filter(pc.is_in(table.column("request_id"), wanted))
    best: dict[str, dict] = {}
    for r in table.to_pylist():
        if r["id"] not in best or (best[r["id"]]["error"] and not r["error"]):
            best[r["id"]] = r
    return [best[k] for k in sorted(best)]
