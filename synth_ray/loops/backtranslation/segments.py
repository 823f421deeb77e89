"""Unlabelled "responses" for Instruction Backtranslation: web documents cut into
self-contained segments, cleaned as the paper describes (survey, "Self-Alignment with
Instruction Backtranslation": self-contained text segments, deduplication, length filtering,
quality heuristics).

A segment is a run of paragraphs of a document, at most ``max_chars`` long, ending at a
paragraph end where possible. Boilerplate lines (navigation, cookie and copyright notices,
share buttons, lines made mostly of separators) are dropped first. A segment then ends kept, or
rejected as ``segment_too_short`` / ``segment_too_long`` / ``segment_boilerplate`` (a
paragraph of only boilerplate) / ``segment_duplicate`` (its normalised text seen before, the
first one's id named). The bounds are our choices: the paper gives none for its Clueweb
segments.
"""

from __future__ import annotations

import re
import unicodedata

import pyarrow as pa

from synth_ray.io.ids import stable_hash, text_hash

_BOILERPLATE = re.compile(
    r"(cookie|copyright|all rights reserved|privacy policy|terms of (use|service)|click here|"
    r"subscribe|sign up|log ?in|share (this|on)|follow us|read more|skip to (main )?content|"
    r"powered by|back to top|leave a (comment|reply))",
    re.IGNORECASE,
)
SEGMENT_SCHEMA = pa.schema(
    [
        ("segment_id", pa.string()),
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("index", pa.int64()),
        ("text", pa.string()),
        ("reject", pa.string()),  # null: kept; else the reason
        ("detail", pa.string()),
    ]
)


def is_boilerplate(line: str) -> bool:
    s = line.strip()
    if not s:
        return True
    letters = sum(ch.isalpha() for ch in s)
    if letters < 0.5 * len(s):  # separators, numbers, menus of symbols
        return True
    if len(s) < 120 and sum(s.count(c) for c in "|»›•") >= 2:  # a navigation bar
        return True
    return len(s) < 120 and bool(_BOILERPLATE.search(s))


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\W+", " ", text).strip()


def split_segments(text: str, max_chars: int) -> list[str]:
    """Paragraphs (boilerplate lines dropped) packed into segments of at most ``max_chars``;
    a paragraph longer than that is cut at sentence ends."""
    paras = []
    for para in re.split(r"\n\s*\n|\n", text):
        lines = [ln for ln in para.splitlines() if not is_boilerplate(ln)]
        if lines:
            paras.append(" ".join(ln.strip() for ln in lines))
    out, cur = [], ""
    for p in paras:
        pieces = [p] if len(p) <= max_chars else re.split(r"(?<=[.!?])\s+", p)
        for piece in pieces:
            if cur and len(cur) + 1 + len(piece) > max_chars:
                out.append(cur)
                cur = ""
            cur = f"{cur} {piece}".strip() if cur else piece
    if cur:
        out.append(cur)
    return out


def segment_documents(batch: pa.Table, min_chars: int, max_chars: int) -> pa.Table:
    """Ray Data stage: documents (``doc_id``, ``text``, ``source``) -> segments, each kept or
    marked with its reject reason (length; boilerplate-only documents)."""
    rows = []
    for doc in batch.to_pylist():
        segs = split_segments(doc["text"], max_chars)
        if not segs:
            rows.append(_row(doc, 0, "", "segment_boilerplate", "every line is boilerplate"))
        for i, seg in enumerate(segs):
            reason = detail = None
            if len(seg) < min_chars:
                reason, detail = "segment_too_short", f"{len(seg)} < {min_chars} characters"
            elif len(seg) > max_chars:  # one sentence longer than the bound
                reason, detail = "segment_too_long", f"{len(seg)} > {max_chars} characters"
            rows.append(_row(doc, i, seg, reason, detail))
    return pa.Table.from_pylist(rows, schema=SEGMENT_SCHEMA)


def _row(doc: dict, i: int, text: str, reason: str | None, detail: str | None) -> dict:
    return {
        "segment_id": f"seg-{stable_hash(doc['doc_id'], i, text_hash(text), length=16)}",
        "doc_id": doc["doc_id"],
        "source": doc.get("source"),
        "index": i,
        "text": text,
        "reject": reason,
        "detail": detail,
    }


def deduplicate(segments: list[dict]) -> list[dict]:
    """Mark later copies (same normalised text) of a kept segment as duplicates, in a fixed
    order (by segment id), so reruns decide the same way."""
    first: dict[str, str] = {}
    for s in sorted(segments, key=lambda s: s["segment_id"]):
        if s["reject"]:
            continue
        key = normalise(s["text"])
        if key in first:
            s["reject"], s["detail"] = "segment_duplicate", f"same text as {first[key]}"
        else:
            first[key] = s["segment_id"]
    return segments
