"""Rejects files: content-named writes, compaction, and a stage's rejects replaced on a rerun."""

from __future__ import annotations

from synth_ray.io.rejects import compact, drop_stage, read_rejects, reject, write_rejects


def _rows(stage: str, ids: range) -> list[dict]:
    return [reject("job", f"{stage}_reason", stage=stage, id=f"r{i}", detail="d") for i in ids]


def test_drop_stage_removes_only_that_stage(tmp_path):
    d = str(tmp_path)
    write_rejects(d, _rows("filter", range(3)), "filter")
    write_rejects(d, _rows("judge", range(3, 7)), "judge")
    write_rejects(d, _rows("judge", range(7, 8)) + _rows("parse", range(8, 10)), "mixed")
    assert drop_stage(d, "judge") == 5
    left = read_rejects(d).to_pylist()
    assert sorted(r["id"] for r in left) == ["r0", "r1", "r2", "r8", "r9"]
    assert {r["stage"] for r in left} == {"filter", "parse"}
    assert drop_stage(d, "judge") == 0


def test_drop_stage_in_the_compacted_file(tmp_path):
    d = str(tmp_path)
    write_rejects(d, _rows("filter", range(2)) + _rows("judge", range(2, 5)), "a")
    assert compact(d).num_rows == 5 and [p.name for p in tmp_path.iterdir()] == ["rejects.parquet"]
    write_rejects(d, _rows("judge", range(5, 6)), "judge")  # a later run's
    assert drop_stage(d, "judge") == 4
    assert sorted(r["id"] for r in read_rejects(d).to_pylist()) == ["r0", "r1"]
    assert [p.name for p in tmp_path.iterdir()] == ["rejects.parquet"]
