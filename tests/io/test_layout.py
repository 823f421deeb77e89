"""Resume bookkeeping in OUTPUT_DIR/data: done ids, retried errors, unreadable files."""

import pyarrow as pa
import pyarrow.parquet as pq

from synth_ray.io.layout import drop_superseded_errors, id_status, read_parquet_dir


def _write(path, ids, errors):
    pq.write_table(
        pa.table({"id": ids, "error": pa.array(errors, pa.string()), "x": list(range(len(ids)))}),
        path,
    )


def test_id_status_and_superseded_errors(tmp_path):
    _write(tmp_path / "run1.parquet", ["a", "b", "c"], ["boom", None, "boom"])
    _write(tmp_path / "run2.parquet", ["a"], [None])  # a retried and succeeded, c not yet
    done, errored = id_status(str(tmp_path))
    assert done == {"a", "b"} and errored == {"c"}
    before = (tmp_path / "run2.parquet").read_bytes()
    drop_superseded_errors(str(tmp_path), {"a", "c"})
    t = read_parquet_dir(str(tmp_path))
    assert sorted(zip(t.column("id").to_pylist(), t.column("error").to_pylist())) == [
        ("a", None),
        ("b", None),
        ("c", "boom"),
    ]  # old error row of a gone, c kept
    assert (tmp_path / "run2.parquet").read_bytes() == before  # untouched file not rewritten


def test_unreadable_file_is_moved_aside(tmp_path):
    _write(tmp_path / "ok.parquet", ["a"], [None])
    (tmp_path / "cut.parquet").write_bytes(b"PAR1 truncated")
    assert id_status(str(tmp_path)) == ({"a"}, set())
    assert (tmp_path / "cut.parquet.corrupt").exists() and not (tmp_path / "cut.parquet").exists()


def test_final_errors_count_as_done(tmp_path):
    """An invalid request (e.g. a prompt longer than the context) is not resent every run."""
    _write(
        tmp_path / "r.parquet",
        ["long", "flaky"],
        ["invalid_request: VLLMValidationError: maximum context length", "TimeoutError"],
    )
    assert id_status(str(tmp_path)) == ({"long"}, {"flaky"})


def test_file_missing_a_column_is_an_error_not_corruption(tmp_path):
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "other.parquet")
    try:
        id_status(str(tmp_path))
    except ValueError as exc:
        assert "other.parquet" in str(exc) and "error" in str(exc)
    else:
        raise AssertionError("expected a ValueError")
    assert (tmp_path / "other.parquet").exists()  # not moved aside
