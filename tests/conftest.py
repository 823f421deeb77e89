"""Shared fixtures. Expensive things (the tiny model, the local Ray) are built once per session.

Tests run real components: a local Ray cluster, vLLM on CPU, vLLM's OpenAI server, `ray start`
+ `ray job submit`. They share one tiny model, built locally with no network.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from synth_ray.models.tiny import tiny_model_path

    return str(tiny_model_path())


@pytest.fixture(scope="session")
def ray_local(tiny_model):
    """One embedded Ray for the session (8 logical CPUs on 2 cores: see STACK.md)."""
    import ray

    from synth_ray.runner import init_local_ray

    if not ray.is_initialized():
        init_local_ray(8, runtime_env={"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def c4_docs() -> list[dict]:
    import json

    path = SHARED_DATA / "c4_docs.jsonl"
    if not path.exists():  # the repo's own sample when ../shared is absent
        path = REPO / "examples" / "c4_sample.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
