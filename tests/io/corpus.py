"""A bad-input corpus as real corpora come: kinds of bad lines, bad whole files and folder
layouts, each with what the document readers must make of it (documents or rejects with their
reasons). Used by the reader tests (no Ray), the Ray Data test and the WRAP end-to-end test.

``build(root)`` writes the folder and returns a ``Corpus``: for every input record (a non-blank
line or Parquet row) or failing file, the expected outcome, so a test can check that every
input record is accounted for.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MAX_DOC_BYTES = 2000
TEXT = "A plain sentence about rivers, stones and the long summer of the valley."


def doc(i: str, text: str = TEXT) -> bytes:
    return json.dumps({"id": i, "text": f"{text} ({i})"}).encode()


# (kind, line bytes, expected reject reason or None when the line is read as a document)
LINE_KINDS: list[tuple[str, bytes, str | None]] = [
    ("good line", doc("l-good"), None),
    ("unterminated JSON", b'{"id": "l-unterminated", "text": "no closing', "malformed_json"),
    ("trailing data", b'{"id": "l-trailing", "text": "x"} extra', "malformed_json"),
    ("wrong field", b'{"id": "l-wrong", "body": "text under another name"}', "missing_text"),
    ("null text", b'{"id": "l-null", "text": null}', "missing_text"),
    ("empty object", b"{}", "missing_text"),
    ("number text", b'{"id": "l-num", "text": 42}', "text_not_string"),
    ("list text", b'{"id": "l-list", "text": ["a", "b"]}', "text_not_string"),
    ("empty text", b'{"id": "l-empty", "text": ""}', "empty_text"),
    ("blank text", b'{"id": "l-blank", "text": "  \\n\\t "}', "empty_text"),
    ("non-UTF-8 bytes", b'{"id": "l-latin1", "text": "na\xefve caf\xe9"}', "invalid_utf8"),
    ("binary garbage", b"\x89PNG\r\x1a\x00\xff\xfe\x00\x01garbage", "invalid_utf8"),
    ("JSON array", b"[1, 2, 3]", "not_an_object"),
    ("bare string", b'"just a string"', "not_an_object"),
    ("bare null", b"null", "not_an_object"),
    ("lone surrogate", b'{"id": "l-surrogate", "text": "bad \\ud800 here"}', "invalid_unicode"),
    ("over-size document", doc("l-big", "x" * (MAX_DOC_BYTES + 10)), "too_large"),
    (
        "over-long line",
        b'{"id": "l-long", "text": "' + b"y" * (5 * MAX_DOC_BYTES + 70000) + b'"}',
        "too_large",
    ),
    (
        "deeply nested",
        b'{"id": "l-deep", "text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        "too_deeply_nested",
    ),
    (
        "5,000-digit number",
        b'{"id": "l-digits", "text": "t", "n": ' + b"9" * 5000 + b"}",
        "malformed_json",
    ),
    ("id an object", b'{"id": {"a": 1}, "text": "object id"}', "bad_id"),
    ("duplicate key (last wins)", b'{"id": "l-dupkey", "text": "", "text": "second wins"}', None),
    ("CRLF line end", doc("l-crlf") + b"\r", None),
    ("numeric id", b'{"id": 7, "text": "a document with a numeric id"}', None),
    ("no id (file:line id)", b'{"text": "a document with no id"}', None),
    (
        "unicode line separator in text",
        b'{"id": "l-u2028", "text": "one\\u2028two \xe2\x80\xa8"}',
        None,
    ),
]


@dataclass
class Corpus:
    root: Path
    # path -> line (or row) -> expected reason (None: a document); line None: the whole file
    expect: dict[str, dict[int | None, str | None]] = field(default_factory=dict)
    doc_ids: set[str] = field(default_factory=set)  # ids of the documents to be read
    # files cut short: path -> reason of the one reject after the lines that could be read
    partial: dict[str, str] = field(default_factory=dict)
    kinds: list[str] = field(default_factory=list)

    def add(self, kind: str, path: Path, outcomes: dict[int | None, str | None]) -> None:
        self.kinds.append(kind)
        self.expect.setdefault(str(path), {}).update(outcomes)

    def rejects(self) -> set[tuple[str, int | None, str]]:
        return {(p, n, r) for p, m in self.expect.items() for n, r in m.items() if r}

    def documents(self) -> set[tuple[str, int]]:
        return {(p, n) for p, m in self.expect.items() for n, r in m.items() if r is None}


def build(root: Path, *, include_lines: bool = True) -> Corpus:
    """Write the corpus under ``root``; ``include_lines=False`` leaves out the file of bad lines
    (the WRAP test keeps its inputs small)."""
    root.mkdir(parents=True, exist_ok=True)
    c = Corpus(root)
    if include_lines:
        path = root / "lines.jsonl"
        path.write_bytes(b"\n".join(line for _, line, _ in LINE_KINDS) + b"\n\n   \n")
        c.add("bad lines", path, {i: r for i, (_, _, r) in enumerate(LINE_KINDS, start=1)})
        c.kinds += [k for k, _, _ in LINE_KINDS]
        no_id = [k for k, _, _ in LINE_KINDS].index("no id (file:line id)") + 1
        c.doc_ids |= {"l-good", "l-dupkey", "l-crlf", "7", f"lines.jsonl:{no_id}", "l-u2028"}
    _compressed(root, c)
    _bad_files(root, c)
    _parquet(root, c)
    _folders(root, c)
    return c


def _good(prefix: str, n: int) -> bytes:
    return b"".join(doc(f"{prefix}-{i}") + b"\n" for i in range(n))


def _write(c: Corpus, kind: str, path: Path, data: bytes, outcomes: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    c.add(kind, path, outcomes)


def _compressed(root: Path, c: Corpus) -> None:
    for kind, name, pack in [
        ("gzip JSONL", "c4-gz.jsonl.gz", gzip.compress),
        (
            "multi-member gzip",
            "multi.jsonl.gz",
            lambda b: gzip.compress(b[:80]) + gzip.compress(b[80:]),
        ),
        ("zstd JSONL", "c4-zst.jsonl.zst", lambda b: pa.compress(b, "zstd", asbytes=True)),
        ("bzip2 JSONL", "c4-bz2.jsonl.bz2", bz2.compress),
        ("xz JSONL", "c4-xz.jsonl.xz", lzma.compress),
        ("gzip without a .gz name", "looks-plain.jsonl", gzip.compress),
        ("plain bytes under a .gz name", "already-plain.jsonl.gz", lambda b: b),
    ]:
        prefix = name.split(".")[0]
        _write(c, kind, root / name, pack(_good(prefix, 3)), {1: None, 2: None, 3: None})
        c.doc_ids |= {f"{prefix}-{i}" for i in range(3)}


def _bad_files(root: Path, c: Corpus) -> None:
    _write(c, "empty file", root / "empty.jsonl", b"", {None: "empty_file"})
    _write(c, "only blank lines", root / "blank.jsonl", b"\n \n\t\n", {None: "empty_file"})
    _write(c, "empty gzip", root / "empty.jsonl.gz", gzip.compress(b""), {None: "empty_file"})
    bom = b"\xef\xbb\xbf" + _good("bom", 2)
    _write(c, "UTF-8 byte-order mark", root / "bom.jsonl", bom, {1: None, 2: None})
    c.doc_ids |= {"bom-0", "bom-1"}
    utf16 = "\ufeff".encode("utf-16-le") + _good("u16", 2).decode().encode("utf-16-le")
    _write(c, "UTF-16 file", root / "utf16.jsonl", utf16, {None: "unsupported_encoding"})
    big = b"".join(
        json.dumps(
            {"id": f"trunc-{i}", "text": f"{TEXT} {i} " + "%08x" % (i * 2654435761 % 2**32) * 20}
        ).encode()
        + b"\n"
        for i in range(3000)
    )
    packed = gzip.compress(big)
    _write(c, "truncated gzip", root / "truncated.jsonl.gz", packed[: len(packed) // 2], {})
    c.partial[str(root / "truncated.jsonl.gz")] = "bad_gzip"
    zst = pa.compress(_good("zc", 50), "zstd", asbytes=True)
    _write(
        c, "truncated zstd", root / "truncated.jsonl.zst", zst[: len(zst) // 2], {None: "bad_zstd"}
    )
    no_nl = _good("nonl", 2).rstrip(b"\n")
    _write(c, "no final newline", root / "no-newline.jsonl", no_nl, {1: None, 2: None})
    c.doc_ids |= {"nonl-0", "nonl-1"}
    crlf = _good("crlf", 2).replace(b"\n", b"\r\n")
    _write(c, "CRLF file", root / "crlf.jsonl", crlf, {1: None, 2: None})
    c.doc_ids |= {"crlf-0", "crlf-1"}


def _parquet(root: Path, c: Corpus) -> None:
    pq.write_table(
        pa.table({"id": ["pq-0", "pq-1", "pq-2", None], "text": [TEXT, "", None, TEXT + "!"]}),
        root / "rows.parquet",
    )
    c.add(
        "Parquet rows",
        root / "rows.parquet",
        {1: None, 2: "empty_text", 3: "missing_text", 4: None},
    )
    c.doc_ids |= {"pq-0", "rows.parquet:4"}
    _write(
        c,
        "corrupt Parquet",
        root / "corrupt.parquet",
        b"PAR1 this is no parquet",
        {None: "bad_parquet"},
    )
    pq.write_table(pa.table({"id": ["x"], "body": ["no text column"]}), root / "notext.parquet")
    c.add("Parquet without the text column", root / "notext.parquet", {None: "missing_text_column"})
    pq.write_table(
        pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}),
        root / "norows.parquet",
    )
    c.add("Parquet with no rows", root / "norows.parquet", {None: "empty_file"})
    pq.write_table(pa.table({"id": ["pint-0"], "text": [5]}), root / "inttext.parquet")
    c.add("Parquet with a non-string text column", root / "inttext.parquet", {1: "text_not_string"})


def _folders(root: Path, c: Corpus) -> None:
    for sub in ("a", "b"):  # the same file name in two folders: distinct fallback ids
        _write(
            c,
            "same name in two folders",
            root / sub / "part-0.jsonl",
            json.dumps({"text": f"{TEXT} in {sub}"}).encode() + b"\n",
            {1: None},
        )
        c.doc_ids.add(f"{sub}/part-0.jsonl:1")
    (root / ".hidden.jsonl").write_bytes(b"not read: hidden\n")
    (root / "_SUCCESS").write_bytes(b"")
    (root / "README.md").write_bytes(b"not an input\n")
    c.kinds += ["hidden file ignored", "marker file ignored", "other suffix ignored"]
    # Duplicate ids: across files and within one, identical or not; the first in input order
    # (sorted paths, then lines) is kept, each later one rejected.
    _write(
        c,
        "duplicate ids",
        root / "dup-1.jsonl",
        doc("dup-x") + b"\n" + doc("dup-y") + b"\n" + doc("dup-x") + b"\n",
        {1: None, 2: None, 3: "duplicate_id"},
    )
    _write(
        c,
        "identical re-occurrence",
        root / "dup-2.jsonl",
        doc("dup-y") + b"\n" + doc("dup-z", "other text") + b"\n",
        {1: "duplicate_id", 2: None},
    )
    c.doc_ids |= {"dup-x", "dup-y", "dup-z"}


def check(c: Corpus, doc_ids: set[str], rejects: list[dict], docs_at: set | None = None) -> None:
    """Every input record of ``c`` is a document or a reject with the expected reason; nothing
    else was produced. ``docs_at``: the documents' (source, line), when the caller has them."""
    got = {(r["source"], r["line"], r["reason"]) for r in rejects if r["source"] not in c.partial}
    assert got == c.rejects(), (sorted(got - c.rejects()), sorted(c.rejects() - got))
    assert all(r["stage"] == "read" and r["detail"] for r in rejects)
    assert len(rejects) == len({(r["source"], r["line"], r["reason"]) for r in rejects})
    for path, reason in c.partial.items():  # the lines before the damage kept, then one reject
        (cut,) = [r for r in rejects if r["source"] == path]
        assert cut["reason"] == reason and cut["line"] > 1, cut
        kept = {f"trunc-{i}" for i in range(cut["line"] - 1)}
        assert (
            kept <= doc_ids and not {f"trunc-{i}" for i in range(cut["line"] - 1, 3000)} & doc_ids
        )
        doc_ids = doc_ids - kept
        if docs_at is not None:
            assert {n for p, n in docs_at if p == path} == set(range(1, cut["line"]))
            docs_at = {(p, n) for p, n in docs_at if p != path}
    assert doc_ids == c.doc_ids, (sorted(doc_ids - c.doc_ids), sorted(c.doc_ids - doc_ids))
    if docs_at is not None:
        assert docs_at == c.documents()
