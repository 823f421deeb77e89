"""``synth-ray show OUTPUT_DIR``: a few rephrasings of a WRAP run beside their source chunk.

Reads ``OUTPUT_DIR/data/`` (no Ray, no engine) and prints, for the first ``n`` chunks in a
stable order (by chunk id), the source text and each style's rephrasing, shortened to
``width`` characters each, so a reader can judge the quality by eye.
"""

from __future__ import annotations

import textwrap

ORDER = {s: i for i, s in enumerate(["easy", "medium", "hard", "qa"])}
COLUMNS = ["chunk_id", "style", "input_text", "completion", "error", "finish_reason"]


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def show_rephrasings(output_dir: str, n: int = 3, width: int = 400) -> str:
    """The text printed by ``synth-ray show``; raises FileNotFoundError / ValueError when
    OUTPUT_DIR holds no WRAP rows."""
    from synth_ray.io.layout import OutputLayout, read_parquet_dir

    data = OutputLayout.at(output_dir).data
    try:
        table = read_parquet_dir(data)
    except FileNotFoundError:
        table = None
    if table is None or table.num_rows == 0:
        raise FileNotFoundError(f"{data}: no rows (run a WRAP job into {output_dir} first)")
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{data}: not a WRAP run's data (no column {', '.join(missing)}); "
            "`synth-ray show` prints WRAP rephrasings beside their source chunk"
        )
    by_chunk: dict[str, dict] = {}
    for r in table.select(COLUMNS).to_pylist():
        c = by_chunk.setdefault(r["chunk_id"], {"text": r["input_text"], "styles": {}})
        if r["style"] not in c["styles"] or not r["error"]:
            c["styles"][r["style"]] = r
    out = []
    wrap = textwrap.TextWrapper(width=100, initial_indent="    ", subsequent_indent="    ")
    for chunk_id in sorted(by_chunk)[:n]:
        c = by_chunk[chunk_id]
        out.append(f"== chunk {chunk_id}")
        out.append("  source:")
        out.append(wrap.fill(_short(c["text"], width)))
        for style in sorted(c["styles"], key=lambda s: (ORDER.get(s, len(ORDER)), s)):
            r = c["styles"][style]
            if r["error"]:
                body = f"(error: {r['error']})"
            else:
                body = _short(r["completion"], width) or "(empty)"
            note = " [truncated: max_tokens]" if r["finish_reason"] == "length" else ""
            out.append(f"  {style}{note}:")
            out.append(wrap.fill(body))
        out.append("")
    shown = min(n, len(by_chunk))
    out.append(f"({shown} of {len(by_chunk)} chunks shown; all rows in {data})")
    return "\n".join(out)
