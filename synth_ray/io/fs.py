"""Filesystem helpers over pyarrow.fs: local paths and URIs alike (s3://, gs://, hdfs:// by
pyarrow; any other scheme fsspec knows, e.g. memory://, http(s)://, through fsspec)."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def absolute(path: str) -> str:
    """Local paths become absolute (Ray workers may run in another cwd); URIs stay."""
    if is_uri(path):
        return path
    if path.startswith("file://"):
        path = path[len("file://") :]
    return str(Path(path).expanduser().resolve())


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    path = absolute(path)
    if not is_uri(path):
        return pafs.LocalFileSystem(), path
    try:
        return pafs.FileSystem.from_uri(path)
    except pa.ArrowInvalid:  # a scheme pyarrow does not know: through fsspec
        import fsspec

        fsspec_fs, p = fsspec.core.url_to_fs(path)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_fs)), p


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_uri(base) else os.path.join(base, *parts)


def exists(path: str) -> bool:
    fs, p = filesystem(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def makedirs(path: str) -> None:
    fs, p = filesystem(path)
    fs.create_dir(p, recursive=True)


def write_bytes(path: str, data: bytes) -> None:
    """Write atomically where the filesystem allows (local: temp file + rename)."""
    fs, p = filesystem(path)
    fs.create_dir(posixpath.dirname(p) if is_uri(path) else os.path.dirname(p), recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{p}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    else:
        with fs.open_output_stream(p) as f:
            f.write(data)


def read_bytes(path: str) -> bytes:
    """The bytes as stored (no decompression by extension: see ``open_raw``)."""
    fs, p = filesystem(path)
    with fs.open_input_stream(p, compression=None) as f:
        return f.read()


def open_raw(path: str):
    """A seekable binary file of ``path``'s bytes as stored: no decompression by extension
    (pyarrow's ``open_input_stream`` would decompress a ``.gz`` by its name; readers decide the
    codec from the bytes, see ``synth_ray.io.lines``)."""
    fs, p = filesystem(path)
    return fs.open_input_file(p)


def list_files(path: str, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """Files under ``path`` (a file, a folder, or a glob, local or URI), sorted, hidden files
    (names starting with ``.`` or ``_`` below ``path``) skipped."""
    if any(ch in path for ch in "*?["):
        return _glob(path, suffixes)
    fs, p = filesystem(path)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        return []
    prefix = path.split("://", 1)[0] + "://" if is_uri(path) else ""
    if info.type == pafs.FileType.File:
        return [prefix + p if prefix else p]
    infos = fs.get_file_info(pafs.FileSelector(p, recursive=True))
    files = sorted(
        i.path
        for i in infos
        if i.type == pafs.FileType.File
        and not any(part.startswith((".", "_")) for part in i.path[len(p) :].split("/") if part)
        and _ok(i.path, suffixes)
    )
    return [prefix + f if prefix else f for f in files]


def _glob(pattern: str, suffixes: tuple[str, ...] | None) -> list[str]:
    if not is_uri(pattern):
        import glob

        found = sorted(glob.glob(os.path.expanduser(absolute_pattern(pattern)), recursive=True))
        return [absolute(f) for f in found if os.path.isfile(f) and _ok(f, suffixes)]
    import fsspec

    fsspec_fs, p = fsspec.core.url_to_fs(pattern)
    found = sorted(
        f
        for f in fsspec_fs.glob(p)
        if not posixpath.basename(f).startswith((".", "_"))
        and fsspec_fs.isfile(f)
        and _ok(f, suffixes)
    )
    return [fsspec_fs.unstrip_protocol(f) for f in found]


def absolute_pattern(pattern: str) -> str:
    return pattern[len("file://") :] if pattern.startswith("file://") else pattern


def _ok(path: str, suffixes: tuple[str, ...] | None) -> bool:
    return suffixes is None or path.lower().endswith(suffixes)


def delete_file(path: str) -> None:
    fs, p = filesystem(path)
    fs.delete_file(p)
