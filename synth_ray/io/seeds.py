"""Seed files: small JSONL files of hand-written examples that a method ships beside its code
(and a user may replace), checked line by line.

Seeds are configuration, not data: a bad seed line is not skipped as a reject but stops the run
in preflight, before any work, with a ``ValueError`` naming the file, the line and the problem
(invalid JSON, too deeply nested, non-UTF-8 bytes, a problem found by the method's check, an id
seen twice). A user's file is read like the document inputs: a local path or URI, plain or
compressed (codec by magic bytes), a UTF-8 byte-order mark skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

from synth_ray.io import fs
from synth_ray.io.lines import CODEC_ERRORS, FileProblem, iter_lines, open_text_stream

MAX_SEED_LINE = 1 << 20


def load_jsonl_records(
    path: str | None,
    package: str,
    default_name: str,
    problem: Callable[[Any], str | None],
    unique_key: str | None = "id",
) -> list[dict]:
    """Records of ``path`` (default: ``default_name`` shipped in ``package``).

    Blank lines are skipped; a line that is not JSON, for which ``problem(record)`` returns a
    reason, or whose ``unique_key`` value repeats an earlier line's (reported after the whole
    file parsed), raises ``ValueError`` naming the file and the line number.
    """
    where = default_name if path is None else str(path)
    records: list[dict] = []
    seen: dict[Any, int] = {}
    duplicate: str | None = None
    for lineno, raw in _lines(path, package, default_name):
        if raw is None:
            raise ValueError(f"{where}: line {lineno}: line longer than {MAX_SEED_LINE} bytes")
        if not raw.strip():
            continue
        record = _parse(raw, f"{where}: line {lineno}")
        why = problem(record)
        if why:
            raise ValueError(f"{where}: line {lineno}: {why}")
        key = record.get(unique_key) if unique_key and isinstance(record, dict) else None
        if isinstance(key, (dict, list)):
            raise ValueError(f"{where}: line {lineno}: {unique_key!r} is not a string")
        if key is not None:
            if key in seen and duplicate is None:
                duplicate = f"{where}: line {lineno}: duplicate {unique_key} {key!r} (first at "
                duplicate += f"line {seen[key]})"
            seen.setdefault(key, lineno)
        records.append(record)
    if duplicate:  # reported once the whole file is known to parse
        raise ValueError(duplicate)
    return records


def _lines(path: str | None, package: str, default_name: str) -> Iterator[tuple[int, Any]]:
    if path is None:
        data = resources.files(package).joinpath(default_name).read_bytes()
        for lineno, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
            yield lineno, raw
        return
    try:
        raw_file = fs.open_raw(fs.absolute(str(path)))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    lineno = 0
    with raw_file:
        try:
            stream, codec = open_text_stream(raw_file)
            for lineno, raw, _ in iter_lines(stream, MAX_SEED_LINE):
                yield lineno, raw
        except FileProblem as exc:
            raise ValueError(f"{path}: {exc}") from None
        except CODEC_ERRORS as exc:
            raise ValueError(f"{path}: unreadable after line {lineno}: {exc}") from None


def _parse(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: invalid JSON ({e.msg})") from None
    except RecursionError:
        raise ValueError(f"{where}: invalid JSON (nested too deeply)") from None
    except ValueError as e:  # e.g. a number of over 4,300 digits
        raise ValueError(f"{where}: invalid JSON ({e})") from None
