"""Shared by the verify tests: short limits, and the processes left by sandbox runs."""

from __future__ import annotations

import os

import pytest

from synth_ray.stages.verify.sandbox import SandboxConfig, _is_zombie, probe


def limits_config(**kw) -> SandboxConfig:
    """Short limits: hostile programs are stopped within 3 s (slack for a loaded machine)."""
    base = dict(wall_s=3.0, cpu_s=1, memory_mb=256, file_size_mb=1, processes=8, output_bytes=4096)
    return SandboxConfig(**{**base, **kw})


def sandbox_processes(config: SandboxConfig | None = None) -> list[int]:
    """Live (not zombie) processes whose uid is in the sandbox's uid range."""
    c = config or SandboxConfig()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except FileNotFoundError:
            continue
        if c.uid_base <= uid < c.uid_base + c.uid_count and not _is_zombie(pid):
            found.append(int(pid))
    return found


def require_isolation() -> None:
    """Skip where the sandbox cannot isolate (not root): it would refuse, by design."""
    iso = probe(SandboxConfig())
    if not iso.full:
        pytest.skip(f"the sandbox refuses to run here: {iso.describe()}")
