"""Streaming reads: one JSONL file several times larger than a worker's memory budget, read by
``read_documents`` on an embedded Ray with bounded worker memory, its lines in many blocks.

    .venv/bin/python benchmarks/read_memory.py [--size-gb 2] [--codec plain|gzip|zstd]
        [--budget-mb 256] [--dir /tmp/read-memory]

Writes a file of about ``--size-gb`` GB of ~2 kB documents (C4-like word soup, each with an id;
compressed with ``--codec``), then reads it through ``synth_ray.io.readers.read_documents`` (one
Ray Data task streams the file; the documents are materialized in the object store, spilled to
disk if it fills; duplicate ids are checked from the id columns). A sampler thread reads
``/proc/<pid>/status`` of every Ray worker every 50 ms: ``RssAnon`` (the worker's private heap:
what a worker memory budget limits) and ``VmRSS`` (which also counts the object store's shared
pages the worker touched while writing its blocks). The last line is
``ratio=<file bytes / peak worker private memory>``; exit status 1 if the peak private memory of
any worker exceeded ``--budget-mb``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import sys
import threading
import time
from pathlib import Path

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "that",
    "with",
    "as",
    "was",
    "by",
    "it",
    "at",
    "from",
    "this",
    "be",
    "are",
    "or",
    "an",
    "have",
    "has",
    "river",
    "stone",
    "valley",
    "summer",
    "water",
    "city",
    "garden",
    "market",
    "school",
    "music",
    "history",
    "science",
    "light",
    "people",
    "small",
    "great",
    "local",
    "public",
    "early",
    "modern",
    "local",
    "north",
    "south",
    "simple",
    "careful",
    "quick",
]


def write_corpus(path: Path, size: int, codec: str) -> tuple[int, int]:
    """(documents, uncompressed bytes) of a JSONL file of about ``size`` bytes."""
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(330)) for _ in range(997)]
    n = written = 0
    with _open_out(path, codec) as out:
        while written < size:
            lines = [
                json.dumps({"id": f"doc-{n + k}", "text": texts[(n + k) % len(texts)]}).encode()
                for k in range(10_000)
            ]
            block = b"\n".join(lines) + b"\n"
            out.write(block)
            n, written = n + len(lines), written + len(block)
    return n, written


def _open_out(path: Path, codec: str):
    if codec == "gzip":
        return gzip.open(path, "wb", compresslevel=1)
    if codec == "zstd":
        import pyarrow as pa

        return pa.CompressedOutputStream(str(path), "zstd")
    return path.open("wb")


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "VmRSS"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


class Sampler(threading.Thread):
    """Peak RssAnon / VmRSS per Ray worker process (``ray::`` in its command line) started by
    this driver's embedded Ray (its descendants)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak: dict[int, dict[str, int]] = {}
        self.names: dict[int, str] = {}
        self.stop = threading.Event()

    def run(self):
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():  # this driver's embedded Ray only, not other sessions'
            for p in me.children(recursive=True):
                try:
                    p.info = {"pid": p.pid, "cmdline": p.cmdline()}
                except psutil.Error:
                    continue
                cmd = " ".join(p.info["cmdline"] or [])
                if not cmd.startswith("ray::") and "default_worker.py" not in cmd:
                    continue
                s = _status(p.info["pid"])
                peak = self.peak.setdefault(p.info["pid"], {"RssAnon": 0, "VmRSS": 0})
                for k, v in s.items():
                    if v > peak[k]:
                        peak[k] = v
                        self.names[p.info["pid"]] = cmd[:60]
            time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--codec", choices=["plain", "gzip", "zstd"], default="plain")
    ap.add_argument("--budget-mb", type=int, default=256)
    ap.add_argument("--dir", default="/tmp/read-memory")
    ap.add_argument(
        "--no-ray",
        action="store_true",
        help="read in this process with the reader alone (FileReader), peak RSS by getrusage",
    )
    args = ap.parse_args()

    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    suffix = {"plain": "", "gzip": ".gz", "zstd": ".zst"}[args.codec]
    path = root / f"big.jsonl{suffix}"
    t0 = time.perf_counter()
    n_docs, raw_bytes = write_corpus(path, int(args.size_gb * 1e9), args.codec)
    file_bytes = path.stat().st_size
    print(
        f"wrote {path.name}: {n_docs} documents, {raw_bytes / 1e9:.2f} GB of JSONL "
        f"({file_bytes / 1e9:.2f} GB on disk) in {time.perf_counter() - t0:.0f} s"
    )

    from synth_ray.io.readers import ReadOptions, read_documents
    from synth_ray.runner import init_local_ray

    if args.no_ray:
        return _in_process(path, root, raw_bytes, n_docs, args.budget_mb)

    init_local_ray(8, _temp_dir=str(root / "ray"))
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    ds = read_documents(str(path), ReadOptions(rejects_dir=str(root / "rejects")))
    mat = ds.materialize()
    count = mat.count()
    blocks = mat.num_blocks()
    read_s = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    import resource

    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    worst = max(sampler.peak.items(), key=lambda kv: kv[1]["RssAnon"])
    worst_rss = max(v["VmRSS"] for v in sampler.peak.values())
    print(
        f"read {count} documents in {read_s:.0f} s ({raw_bytes / 1e6 / read_s:.0f} MB/s), "
        f"{blocks} blocks"
    )
    print(
        f"peak worker private memory (RssAnon): {worst[1]['RssAnon'] / 2**20:.0f} MiB "
        f"({sampler.names.get(worst[0], '?')})"
    )
    print(f"peak worker RSS incl. object-store pages (VmRSS): {worst_rss / 2**20:.0f} MiB")
    print(f"driver peak RSS: {driver / 2**20:.0f} MiB; workers sampled: {len(sampler.peak)}")
    ok = count == n_docs and worst[1]["RssAnon"] <= args.budget_mb * 2**20 and blocks > 1
    print(f"budget {args.budget_mb} MiB per worker: {'within' if ok else 'EXCEEDED or lost rows'}")
    print(f"ratio={raw_bytes / worst[1]['RssAnon']:.1f}")
    import ray

    ray.shutdown()
    shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


def _hwm() -> int:
    """This process's peak resident memory (VmHWM: per address space, so not inherited from
    the parent the way getrusage's ru_maxrss is across fork+exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _read_alone(path: str, rejects: str, out) -> None:
    """Child process: imports, then the reader alone over the file; sends figures back."""
    from synth_ray.io.readers import FileReader, ReadOptions, find_inputs

    base = _hwm()
    (file,) = find_inputs(path)
    t0 = time.perf_counter()
    count = batches = 0
    for table in FileReader(file, ReadOptions(rejects_dir=rejects)).batches():
        count += table.num_rows
        batches += 1
    peak = _hwm()
    out.send((count, batches, time.perf_counter() - t0, base, peak))


def _in_process(path: Path, root: Path, raw_bytes: int, n_docs: int, budget_mb: int) -> int:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # a fresh interpreter: its peak RSS is the reader's alone
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_read_alone, args=(str(path), str(root / "rejects"), send))
    child.start()
    count, batches, read_s, base, peak = recv.recv()
    child.join()
    print(
        f"read {count} documents in {read_s:.0f} s ({raw_bytes / 1e6 / read_s:.0f} MB/s), "
        f"{batches} batches of documents"
    )
    print(
        f"reader process peak RSS: {peak / 2**20:.0f} MiB (after imports: {base / 2**20:.0f} MiB)"
    )
    ok = count == n_docs and peak <= budget_mb * 2**20
    print(f"budget {budget_mb} MiB: {'within' if ok else 'EXCEEDED or lost rows'}")
    print(f"ratio={raw_bytes / peak:.1f}")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
