"""Find and stop the processes of one local Ray cluster, and nothing else.

``ray stop`` kills every Ray on the machine (other users', other tests'). A cluster started by
``cluster/local.sh`` (or a test) is instead known by the process groups of its ``ray start``
sessions and by a marker variable in its environment (Ray workers leave the process group but
inherit the environment); their descendants (vLLM engine processes) belong to it too.

    python -m synth_ray.localcluster kill --pgids-file DIR/pgids --var NAME --marker VALUE

exits 0 when nothing of the cluster is left, 1 otherwise (listing the survivors).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterable

import psutil


def cluster_processes(
    pgids: Iterable[int], marker: str, var: str, exclude: Iterable[int] = ()
) -> list[psutil.Process]:
    """Processes in one of the process groups ``pgids`` or with ``var=marker`` in their
    environment, and all their descendants; never this process nor ``exclude``."""
    pgids, skip = set(pgids), {os.getpid(), *exclude}
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter():
        if p.pid in skip:
            continue
        try:
            if os.getpgid(p.pid) in pgids or p.environ().get(var) == marker:
                found[p.pid] = p
        except (psutil.Error, OSError):  # gone, or not ours to read
            pass
    for p in list(found.values()):
        try:
            for c in p.children(recursive=True):
                found.setdefault(c.pid, c)
        except psutil.Error:
            pass
    return [p for pid, p in found.items() if pid not in skip]


def kill_cluster(
    pgids: Iterable[int], marker: str, var: str, exclude: Iterable[int] = (), hard: bool = False
) -> list[int]:
    """SIGTERM the cluster's processes, then SIGKILL what is left (``hard``: SIGKILL all of them
    at once, as a lost machine would stop them); returns the pids still alive (zombies waiting
    for a parent to reap them do not count)."""
    pgids, exclude = set(pgids), set(exclude)
    for attempt in range(3):
        procs = cluster_processes(pgids, marker, var, exclude)
        if not procs:
            return []
        sig = signal.SIGTERM if attempt == 0 and not hard else signal.SIGKILL
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        psutil.wait_procs(procs, timeout=15 if sig == signal.SIGTERM else 5)
    survivors = []
    for p in cluster_processes(pgids, marker, var, exclude):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                survivors.append(p.pid)
        except psutil.Error:
            pass
    return survivors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m synth_ray.localcluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    k = sub.add_parser("kill", help="stop the cluster's processes")
    k.add_argument("--pgids-file", required=True, help="process group ids, whitespace-separated")
    k.add_argument("--var", required=True, help="the marker variable's name")
    k.add_argument("--marker", required=True, help="the marker variable's value")
    args = ap.parse_args(argv)
    try:
        with open(args.pgids_file) as f:
            pgids = {int(x) for x in f.read().split()}
    except FileNotFoundError:
        pgids = set()
    left = kill_cluster(pgids, args.marker, args.var, exclude={os.getppid()})  # not the caller
    print(f"stopped; {len(left)} process(es) left: {left}" if left else "stopped")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
