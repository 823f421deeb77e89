"""The output layout, the same for every job::

    OUTPUT_DIR/data/       Parquet: the job's rows (one per id; `error` says if one failed)
    OUTPUT_DIR/rejects/    Parquet: input rows that produced no output, with reasons
    OUTPUT_DIR/run.json    the latest run: config, versions, counts, tokens, timings
    OUTPUT_DIR/runs/       one JSON per run (history)
    (jobs may add folders, e.g. WRAP's OUTPUT_DIR/mix/)

Resume: ids already in ``data/`` without an error are done, and a rerun skips them.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth_ray.io import fs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputLayout:
    root: str

    @classmethod
    def at(cls, output_dir: str) -> OutputLayout:
        return cls(fs.absolute(output_dir))

    def sub(self, name: str) -> str:
        return fs.join(self.root, name)

    @property
    def data(self) -> str:
        return self.sub("data")

    @property
    def rejects(self) -> str:
        return self.sub("rejects")

    @property
    def run_json(self) -> str:
        return self.sub("run.json")

    def run_record(self, run_id: str) -> str:
        return fs.join(self.sub("runs"), f"{run_id}.json")

    def make(self) -> None:
        for d in (self.root, self.data, self.rejects):
            fs.makedirs(d)


def read_parquet_dir(path: str, columns: list[str] | None = None) -> pa.Table | None:
    """All readable Parquet files under ``path`` concatenated (None when there are none).

    A file that cannot be read (e.g. cut short by a killed run) is moved aside to
    ``<name>.corrupt`` and logged: its rows are not done, so the rerun makes them again.
    """
    tables = []
    for f in fs.list_files(path, (".parquet",)):
        try:
            pf = pq.ParquetFile(io.BytesIO(fs.read_bytes(f)))
            missing = [c for c in columns or () if c not in pf.schema_arrow.names]
            t = None if missing else pf.read(columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            log.warning(
                "unreadable output file %s (%s): moved aside, its rows will be redone", f, exc
            )
            fsys, p = fs.filesystem(f)
            fsys.move(p, p + ".corrupt")
            continue
        if missing:  # a readable file of another shape: not ours to move aside
            raise ValueError(f"{f} has no column(s) {missing} (it has {pf.schema_arrow.names})")
        tables.append(t)
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


# Engines start an error with this when the request itself is invalid (see engines.base).
FINAL_ERROR_PREFIX = "invalid_request: "


def id_status(data_dir: str) -> tuple[set[str], set[str]]:
    """(ids done, ids present only with a retryable error) in ``data_dir``: one read.

    Done: a row without error, or with a final error (an invalid request: retrying cannot
    help, so the id stays recorded as failed instead of being sent again every run).
    """
    t = read_parquet_dir(data_dir, columns=["id", "error"])
    if t is None:
        return set(), set()
    err = t.column("error")
    ok = pc.or_kleene(pc.is_null(err), pc.starts_with(err, FINAL_ERROR_PREFIX))
    done = set(t.filter(ok).column("id").to_pylist())
    return done, set(t.filter(pc.invert(ok)).column("id").to_pylist()) - done


def drop_superseded_errors(data_dir: str, retried: set[str]) -> None:
    """Remove the old error rows of ``retried`` ids that now have a successful row.

    Only files holding such rows are read whole and rewritten; the others are checked on
    their ``id`` and ``error`` columns alone.
    """
    if not retried:
        return
    done, _ = id_status(data_dir)
    stale_ids = pa.array(sorted(retried & done), pa.string())
    if len(stale_ids) == 0:
        return
    for f in fs.list_files(data_dir, (".parquet",)):
        data = fs.read_bytes(f)
        cols = pq.read_table(io.BytesIO(data), columns=["id", "error"])
        stale = pc.and_(pc.is_valid(cols.column("error")), pc.is_in(cols.column("id"), stale_ids))
        if pc.any(stale).as_py():
            keep = pq.read_table(io.BytesIO(data)).filter(pc.invert(stale))
            buf = io.BytesIO()
            pq.write_table(keep, buf)
            fs.write_bytes(f, buf.getvalue())
