"""Document readers without Ray: the bad-input corpus (``corpus.py``) read file by file through
the real file layer, every record a document or a reject with its reason; duplicate ids, input
discovery (folders, globs, overlaps, URIs through fsspec) and the streaming line splitter."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import fsspec
import pyarrow as pa
import pytest

from synth_ray.io.dedup import duplicate_rejects
from synth_ray.io.lines import iter_lines
from synth_ray.io.readers import FileReader, InputError, ReadOptions, find_inputs
from synth_ray.io.rejects import compact, read_rejects

from . import corpus


def read_without_ray(inputs, opts: ReadOptions) -> list[dict]:
    """What ``read_documents`` does, task by task in this process."""
    files = find_inputs(inputs)
    docs = [d for f in files for t in FileReader(f, opts).batches() for d in t.to_pylist()]
    keys = pa.Table.from_pylist(
        [dict(d, hash=str(hash(d["text"]))) for d in docs],
        schema=pa.schema(
            [
                ("doc_id", pa.string()),
                ("source", pa.string()),
                ("line", pa.int64()),
                ("hash", pa.string()),
            ]
        ),
    )
    dups = duplicate_rejects(keys, [f.path for f in files])
    from synth_ray.io.rejects import write_rejects

    write_rejects(opts.rejects_dir, dups, "read-dup")
    drop = {(r["source"], r["line"]) for r in dups}
    return [d for d in docs if (d["source"], d["line"]) not in drop]


@pytest.fixture
def bad_corpus(tmp_path):
    return corpus.build(tmp_path / "in")


def test_corpus_every_record_accounted_for(bad_corpus, tmp_path):
    assert len(bad_corpus.kinds) >= 20
    opts = ReadOptions(max_doc_bytes=corpus.MAX_DOC_BYTES, rejects_dir=str(tmp_path / "rej"))
    docs = read_without_ray(str(bad_corpus.root), opts)
    rejects = read_rejects(opts.rejects_dir).to_pylist()
    corpus.check(
        bad_corpus, {d["doc_id"] for d in docs}, rejects, {(d["source"], d["line"]) for d in docs}
    )
    assert len(docs) == len({d["doc_id"] for d in docs})
    by_id = {d["doc_id"]: d for d in docs}
    assert by_id["l-dupkey"]["text"] == "second wins"
    assert by_id["l-u2028"]["text"] == "one\u2028two \u2028"
    assert by_id["l-crlf"]["text"].endswith("(l-crlf)")
    assert by_id["bom-0"]["line"] == 1  # the BOM file's first record is read
    dup = {
        (r["source"].rsplit("/", 1)[1], r["line"]): r["detail"]
        for r in rejects
        if r["reason"] == "duplicate_id"
    }
    assert (
        "dup-1.jsonl line 1" in dup[("dup-1.jsonl", 3)]
        and "different" not in dup[("dup-1.jsonl", 3)]
    )
    assert "dup-1.jsonl line 2" in dup[("dup-2.jsonl", 1)]


def test_rerun_writes_the_same_rejects(bad_corpus, tmp_path):
    opts = ReadOptions(max_doc_bytes=corpus.MAX_DOC_BYTES, rejects_dir=str(tmp_path / "rej"))
    first = read_without_ray(str(bad_corpus.root), opts)
    n = read_rejects(opts.rejects_dir).num_rows
    compact(opts.rejects_dir)
    again = read_without_ray(str(bad_corpus.root), opts)
    assert again == first
    assert compact(opts.rejects_dir).num_rows == n


def test_duplicate_with_different_text_names_the_first(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b'{"id": "same", "text": "first"}\n')
    b.write_bytes(b'{"id": "other", "text": "x"}\n{"id": "same", "text": "second"}\n')
    opts = ReadOptions(rejects_dir=str(tmp_path / "rej"))
    docs = read_without_ray(
        [str(b), str(a)], opts
    )  # input order is sorted paths, not argument order
    assert [(d["doc_id"], d["text"]) for d in docs] == [("same", "first"), ("other", "x")]
    (rej,) = read_rejects(opts.rejects_dir).to_pylist()
    assert (rej["source"], rej["line"], rej["reason"]) == (str(b), 2, "duplicate_id")
    assert f"{a} line 1" in rej["detail"] and "a different text" in rej["detail"]


def test_inputs_folders_globs_overlaps_and_errors(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/x.jsonl", "d/sub/y.jsonl.zst", "d/z.parquet", "d/sub/x.jsonl"):
        (tmp_path / name).write_bytes(b"")
    files = find_inputs([str(tmp_path / "d"), str(tmp_path / "d" / "*.jsonl")])
    assert [(f.name, f.kind) for f in files] == [
        ("sub/x.jsonl", "jsonl"),
        ("y.jsonl.zst", "jsonl"),
        ("d/x.jsonl", "jsonl"),
        ("z.parquet", "parquet"),
    ]
    with pytest.raises(InputError, match="no input files"):
        find_inputs(str(tmp_path / "nothing-here"))
    with pytest.raises(InputError, match="no input files"):
        find_inputs(str(tmp_path / "d" / "*.csv"))


def test_remote_uris_through_fsspec(tmp_path):
    mem = fsspec.filesystem("memory")
    mem.pipe("/corpus/a.jsonl.gz", gzip.compress(b'{"id": "m1", "text": "remote"}\n'))
    mem.pipe(
        "/corpus/b.jsonl.zst", pa.compress(b'{"id": "m2", "text": "zst"}\n', "zstd", asbytes=True)
    )
    mem.pipe("/corpus/bad.parquet", b"nope")
    opts = ReadOptions(rejects_dir=str(tmp_path / "rej"))
    for spec in ("memory://corpus", "memory:///corpus/*"):
        docs = read_without_ray(spec, opts)
        assert [(d["doc_id"], d["source"]) for d in docs] == [
            ("m1", "memory:///corpus/a.jsonl.gz"),
            ("m2", "memory:///corpus/b.jsonl.zst"),
        ]
    (rej,) = compact(opts.rejects_dir).to_pylist()
    assert (rej["source"], rej["reason"]) == ("memory:///corpus/bad.parquet", "bad_parquet")


def test_file_uri_and_local_path_alike(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"id": "u", "text": "t"}\n')
    opts = ReadOptions(rejects_dir=str(tmp_path / "rej"))
    assert read_without_ray(f"file://{f}", opts) == read_without_ray(str(f), opts)


class _Stream:
    """A file of ``n`` lines of ``width`` bytes (line ``long_at`` of ``long_len``), generated as
    it is read: the test's own memory stays small."""

    def __init__(self, n: int, width: int, long_at: int | None = None, long_len: int = 0):
        self.lens = [long_len if i == long_at else width for i in range(n)]
        self.i, self.pos = 0, 0  # current line, bytes of it already given

    def read(self, size: int) -> bytes:
        out = []
        while size > 0 and self.i < len(self.lens):
            left = self.lens[self.i] - self.pos
            if left >= 0 and size:
                k = min(size, left)
                out.append(b"x" * k)
                self.pos += k
                size -= k
                if self.pos == self.lens[self.i] and size:
                    out.append(b"\n")
                    size -= 1
                    self.i, self.pos = self.i + 1, 0
        return b"".join(out)


def test_iter_lines_bounded_memory_and_long_lines():
    tracemalloc.start()
    n = 0
    for lineno, data, size in iter_lines(_Stream(2000, 50, long_at=7, long_len=50_000_000), 4096):
        n += 1
        if lineno == 8:
            assert data is None and size == 50_000_000
        else:
            assert data == b"x" * 50 and size == 50
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 2000
    assert peak < 4 << 20, peak  # a 50 MB line went by; at most a few read blocks held


def test_iter_lines_edges():
    import io

    def lines(b, m=100):
        return [(n, d) for n, d, _ in iter_lines(io.BytesIO(b), m)]

    assert lines(b"") == []
    assert lines(b"a\nb") == [(1, b"a"), (2, b"b")]
    assert lines(b"\xef\xbb\xbfa\n") == [(1, b"a")]
    assert lines(b"a\n\nb\n") == [(1, b"a"), (2, b""), (3, b"b")]
    assert lines(b"x" * 101 + b"\nok\n") == [(1, None), (2, b"ok")]
    assert lines(b"x" * 101) == [(1, None)]


def _seed(i: int) -> bytes:
    return json.dumps(
        {"id": f"s{i}", "instruction": "Say hi.", "input": "x", "constraints": "None."}
    ).encode()


def test_seed_files_bad_kinds(tmp_path):
    """Seeds are configuration: each bad kind stops preflight with the file, line and reason."""
    from synth_ray.methods.unnatural.prompts import load_seeds

    good, other = _seed(1), _seed(2)
    cases = {
        "s.jsonl.gz": (gzip.compress(b"\xef\xbb\xbf" + good + b"\n\n" + other + b"\n"), None),
        "bom.jsonl": (b"\xef\xbb\xbf" + good + b"\r\n", None),
        "latin1.jsonl": (good + b"\n" + other.replace(b"Say", b"S\xe9y"), "line 2: not UTF-8"),
        "broken.jsonl": (good + b"\n{oops\n", "line 2: invalid JSON"),
        "deep.jsonl": (b"[" * 20000 + b"]" * 20000, "line 1: invalid JSON \\(nested too deeply"),
        "dup.jsonl": (good + b"\n" + good + b"\n", "line 2: duplicate id 's1' \\(first at line 1"),
        "utf16.jsonl": ("\ufeff".encode("utf-16-le") + good.decode().encode("utf-16-le"), "UTF-16"),
        "field.jsonl": (good.replace(b'"input": "x"', b'"input": 3'), "line 1: field 'input'"),
        "cut.jsonl.gz": (gzip.compress(good * 2000)[:200], "unreadable after line"),
    }
    for name, (data, error) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        if error is None:
            assert [s["id"] for s in load_seeds(str(p))] == ["s1", "s2"][: len(load_seeds(str(p)))]
        else:
            with pytest.raises(ValueError, match=error):
                load_seeds(str(p))
    with pytest.raises(ValueError, match="no such file"):
        load_seeds(str(tmp_path / "missing.jsonl"))
