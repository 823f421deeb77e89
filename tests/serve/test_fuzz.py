"""The scoring service fuzzed from its OpenAPI schema (schemathesis; ``benchmarks/fuzz_service.py``
with fewer examples): with and without the token, no 5xx, no request that hangs, the token in no
file of the Ray session. Regression: lone surrogates (a 500 from the reward model's tokenizer)
and deep nesting (a RecursionError in the guard, a 500) are 400s now. Runs on the session's service (``scoring_service``: the tiny reward
model and the tiny vLLM judge, limits lowered)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.serve, pytest.mark.vllm]  # judge: tiny vLLM

EXAMPLES = 10  # per operation and mode: at most 4 x 4 x 10 + 1 = 161 requests a pass
TIMEOUT_S = 30.0


def _fuzz_module():
    spec = importlib.util.spec_from_file_location(
        "fuzz_service", REPO / "benchmarks/fuzz_service.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_service"] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_fuzzed_with_and_without_the_token(scoring_service):
    import ray

    fz = _fuzz_module()
    svc = scoring_service
    with_token = fz.fuzz(svc.url, "token", svc.auth, EXAMPLES, TIMEOUT_S, seed=1)
    without = fz.fuzz(svc.url, "no-token", None, EXAMPLES, TIMEOUT_S, seed=1)
    report = "\n".join(with_token.lines() + without.lines())
    print(report)
    for p in (with_token, without):
        assert p.requests >= 100, report  # each operation and mode was fuzzed
        assert p.server_errors == [] and p.hangs == [] and p.client_errors == [], report
        assert p.skipped == ["GET /healthz (negative)"], report  # no input to break
    # With the token the requests reach the guard, validation and the scorers: 200s and 4xx
    # (400: not JSON, a lone surrogate, nesting too deep; 422: not the schema).
    assert min(with_token.statuses[s] for s in (200, 400, 422)) > 0, report
    # Without it every scoring route answers 401; only /healthz is open.
    assert set(without.statuses) == {200, 401}, report
    assert without.by_operation["GET /healthz"] == {200: 1}, report
    time.sleep(2)  # log flush
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    assert fz.token_in_files(svc.token, [logs.parent]) == []
