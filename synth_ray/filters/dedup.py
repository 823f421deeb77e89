"""``synth-ray dedup``: the Self-Instruct ROUGE-L novelty filter over any JSONL/Parquet dataset.

Rows are offered in file order to a :class:`NoveltyIndex`; a row is kept when its ROUGE-L
against every row kept so far is at most the threshold (0.7, Self-Instruct's). Kept rows go to
OUT; the others to ``<OUT stem>.rejects<suffix>`` with ``reason``, ``nearest`` (the kept text
it is closest to) and ``rouge_l``. Rows whose field is missing or not a string are rejected
with that reason. Nothing is dropped silently: kept + rejects = input rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synth_ray.filters.novelty import NoveltyIndex


def _read(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: malformed JSON: {exc.msg}") from None
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )


def rejects_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.rejects{out.suffix}")


def dedup(src: str, dst: str, field: str = "instruction", threshold: float = 0.7) -> dict:
    rows = _read(Path(src))
    index = NoveltyIndex(threshold=threshold)
    kept, rejects = [], []
    for row in rows:
        text = row.get(field) if isinstance(row, dict) else None
        if not isinstance(text, str):
            rejects.append(
                {
                    **(row if isinstance(row, dict) else {"value": row}),
                    "reason": f"missing_or_not_string:{field}",
                    "nearest": None,
                    "rouge_l": None,
                }
            )
            continue
        d = index.add_detailed([text])[0]
        if d.kept:
            kept.append(row)
        else:
            rejects.append(
                {
                    **row,
                    "reason": "rouge_l_above_threshold",
                    "nearest": d.nearest_text,
                    "rouge_l": d.score,
                }
            )
    _write(Path(dst), kept)
    _write(rejects_path(Path(dst)), rejects)
    return {"input": len(rows), "kept": len(kept), "rejected": len(rejects), "threshold": threshold}
