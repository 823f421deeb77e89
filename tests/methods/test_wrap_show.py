"""``synth-ray show``: a WRAP run's rephrasings beside their source chunk, from data/ alone."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from synth_ray.cli import main


def _write(out, rows):
    (out / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "data" / "part-0.parquet")


def _row(chunk, style, completion, error=None, finish="stop"):
    return {
        "id": f"{chunk}-{style}",
        "chunk_id": chunk,
        "style": style,
        "input_text": f"Source text of {chunk}.",
        "completion": completion,
        "error": error,
        "finish_reason": finish,
    }


def test_show_prints_sources_beside_rephrasings(tmp_path, capsys):
    rows = [
        _row(f"d{i}#0", s, f"{s} rephrasing of d{i}")
        for i in range(4)
        for s in ("qa", "hard", "easy", "medium")
    ]
    rows[0] = _row("d0#0", "qa", "", error="engine died")
    rows[1] = _row("d0#0", "hard", "cut off here", finish="length")
    _write(tmp_path, rows)
    assert main(["show", str(tmp_path), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "== chunk d0#0" in out and "== chunk d1#0" in out and "d2#0" not in out
    assert "Source text of d0#0." in out and "easy rephrasing of d1" in out
    block = out.split("== chunk d1#0")[1]
    assert [ln.strip() for ln in block.splitlines() if ln.startswith("  ") and ln.endswith(":")][
        1:
    ] == ["easy:", "medium:", "hard:", "qa:"]  # the paper's order
    assert "(error: engine died)" in out and "hard [truncated: max_tokens]:" in out
    assert "(2 of 4 chunks shown" in out


def test_show_refuses_what_is_not_a_wrap_run(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nothing")]) == 2
    assert "no rows" in capsys.readouterr().err
    _write(tmp_path, [{"id": "x", "instruction": "Do it.", "output": "Done."}])
    assert main(["show", str(tmp_path)]) == 2
    assert "not a WRAP run's data" in capsys.readouterr().err
