"""Streaming text lines out of a file as corpora come: plain or compressed, with or without a
byte-order mark, in bounded memory.

The file layer hands over the raw bytes (no decompression by extension: see ``fs.open_raw``);
the codec is chosen here by the file's magic bytes (gzip, zstandard, bzip2, xz), so a
``.jsonl.gz`` is decompressed exactly once, a compressed file without a compression suffix is
still read, and a ``.gz`` file whose bytes are already plain is read as plain. Lines are cut
from fixed-size reads, never from the whole file: a line longer than ``max_line`` is reported
by its length and skipped, without ever being held in memory.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

READ_SIZE = 1 << 16  # small reads: a corrupt tail loses little that was readable before it
UTF8_BOM = b"\xef\xbb\xbf"
OTHER_BOMS = {  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    b"\xff\xfe\x00\x00": "UTF-32-LE",
    b"\x00\x00\xfe\xff": "UTF-32-BE",
    b"\xff\xfe": "UTF-16-LE",
    b"\xfe\xff": "UTF-16-BE",
}
MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
}
COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd", ".bz2", ".xz")
# What each codec raises on corrupt or truncated data (besides OSError / EOFError).
CODEC_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError, pa.ArrowException)


class FileProblem(Exception):
    """A whole-file problem: ``reason`` is a reject reason, ``str()`` the detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def sniff_codec(head: bytes) -> str | None:
    """The compression named by a file's first bytes, or None for plain bytes."""
    for magic, codec in MAGIC.items():
        if head.startswith(magic):
            return codec
    return None


def decompressed(raw: BinaryIO, codec: str | None) -> BinaryIO:
    """A readable stream of ``raw``'s content under ``codec`` (multi-member gzip and bzip2,
    multi-frame zstandard included)."""
    if codec is None:
        return raw
    if codec == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if codec == "bz2":
        return bz2.BZ2File(raw, mode="rb")
    if codec == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    if codec == "zstd":  # pyarrow's codec: no extra dependency
        source = raw if isinstance(raw, pa.NativeFile) else pa.PythonFile(raw, mode="r")
        return pa.CompressedInputStream(source, "zstd")
    raise ValueError(f"unknown codec {codec!r}")


def open_text_stream(raw: BinaryIO) -> tuple[BinaryIO, str | None]:
    """(decompressed stream, codec) of a seekable raw file, the codec found by magic bytes."""
    head = raw.read(8)
    raw.seek(0)
    codec = sniff_codec(head)
    return decompressed(raw, codec), codec


def iter_lines(stream: BinaryIO, max_line: int) -> Iterator[tuple[int, bytes | None, int]]:
    """``(line number, bytes without the newline, length)`` for every line of ``stream``.

    Lines longer than ``max_line`` come as ``(n, None, length)``: counted, never held whole.
    A UTF-8 byte-order mark at the start is dropped; a UTF-16/32 one raises ``FileProblem``.
    Memory stays within about ``READ_SIZE + max_line`` whatever the file's size.
    """
    lineno, carry, carry_len, overflow, first = 0, [], 0, False, True
    read = getattr(stream, "read1", stream.read)  # read1: what is decoded so far, no more
    while True:
        block = read(READ_SIZE)
        if not block:
            break
        if first:
            first = False
            block = _strip_bom(block)
        parts = block.split(b"\n")
        for part in parts[:-1]:
            lineno += 1
            size = carry_len + len(part)
            if overflow or size > max_line:
                yield lineno, None, size
            else:
                yield lineno, b"".join([*carry, part]) if carry else part, size
            carry, carry_len, overflow = [], 0, False
        tail = parts[-1]
        carry_len += len(tail)
        if overflow or carry_len > max_line:
            carry, overflow = [], True
        elif tail:
            carry.append(tail)
    if carry_len or overflow:
        lineno += 1
        yield lineno, (None if overflow else b"".join(carry)), carry_len


def _strip_bom(block: bytes) -> bytes:
    if block.startswith(UTF8_BOM):
        return block[len(UTF8_BOM) :]
    for bom, name in OTHER_BOMS.items():
        if block.startswith(bom):
            raise FileProblem(
                "unsupported_encoding", f"{name} byte-order mark: files must be UTF-8"
            )
    return block
