"""Split documents into chunks of at most ``max_tokens`` tokens of the model's tokenizer.

WRAP (survey, "Synthetic data for pretraining") rephrases at most 300 tokens at a time, having
found that longer inputs lose information. Chunks end at a sentence end where one falls in the
second half of the window, else at a word boundary, else at the token limit; every chunk is
re-tokenised on its own to guarantee the bound.
"""

from __future__ import annotations

import pyarrow as pa

from synth_ray.stages.tokenizers import load_tokenizer

CHUNK_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("chunk_id", pa.string()),
        ("chunk_index", pa.int32()),
        ("chunk_text", pa.string()),
        ("chunk_tokens", pa.int32()),
    ]
)
_SENTENCE_END = ".!?…\n"


def _count(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def _boundary(text: str, offs: list[tuple[int, int]], s: int, e: int) -> int:
    """Best end (exclusive token index) for a chunk starting at token s, at most e."""
    lo = s + max(1, (e - s) // 2)
    for i in range(e, lo - 1, -1):  # a sentence end in the second half of the window
        end = offs[i - 1][1]
        prev = text[end - 1] if end > 0 else ""
        nxt = text[end] if end < len(text) else " "
        if (
            prev in _SENTENCE_END
            or (prev in "\"')]" and end > 1 and text[end - 2] in _SENTENCE_END)
        ) and nxt.isspace():
            return i
    for i in range(e, lo - 1, -1):  # else a word boundary
        end = offs[i - 1][1]
        if end < len(text) and (text[end].isspace() or text[end - 1].isspace()):
            return i
    return e


def chunk_text(text: str, tok, max_tokens: int) -> list[tuple[str, int]]:
    """[(chunk, token count)] with every count <= max_tokens; whitespace-only pieces dropped."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = enc["input_ids"], enc["offset_mapping"]
    pieces: list[str] = []
    if len(ids) <= max_tokens:
        pieces.append(text)
    else:
        s = 0
        while s < len(ids):
            e = min(s + max_tokens, len(ids))
            b = e if e == len(ids) else _boundary(text, offs, s, e)
            start = offs[s][0]
            end = offs[b - 1][1] if b < len(ids) else len(text)
            pieces.append(text[start:end])
            s = b
    out: list[tuple[str, int]] = []
    for piece in pieces:
        out.extend(_fit(piece.strip(), tok, max_tokens))
    return out


def _fit(piece: str, tok, max_tokens: int) -> list[tuple[str, int]]:
    """Re-tokenise a piece on its own; split further in the rare case it grew past the bound."""
    if not piece:
        return []
    n = _count(tok, piece)
    if n <= max_tokens:
        return [(piece, n)]
    enc = tok(piece, add_special_tokens=False, return_offsets_mapping=True)
    cut = enc["offset_mapping"][max_tokens - 1][1]
    space = piece.rfind(" ", 0, cut)
    if space > cut // 2:  # prefer a word boundary near the limit
        cut = space
    if cut <= 0 or cut >= len(piece):
        cut = max(1, len(piece) // 2)
    return _fit(piece[:cut].strip(), tok, max_tokens) + _fit(piece[cut:].strip(), tok, max_tokens)


def chunk_documents(batch: pa.Table, tokenizer: str, max_tokens: int) -> pa.Table:
    """Ray Data UDF: documents (doc_id, text, source) -> chunks (CHUNK_SCHEMA)."""
    tok = load_tokenizer(tokenizer)
    rows = []
    for doc_id, text, source in zip(
        batch.column("doc_id").to_pylist(),
        batch.column("text").to_pylist(),
        batch.column("source").to_pylist(),
    ):
        for k, (chunk, n) in enumerate(chunk_text(text, tok, max_tokens)):
            rows.append(
                {
                    "doc_id": doc_id,
                    "source": source,
                    "chunk_id": f"{doc_id}#{k}",
                    "chunk_index": k,
                    "chunk_text": chunk,
                    "chunk_tokens": n,
                }
            )
    return pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA)
