import json

import pyarrow as pa

from synth_ray.engines.base import SamplingConfig, expand_samples, finish_reason


def test_expand_samples_n_and_seeds():
    s3 = SamplingConfig(n=3, seed=10).to_json()
    s1 = SamplingConfig(n=1).to_json()
    batch = pa.table({"id": ["a", "b"], "sampling": [s3, s1], "keep": [1, 2]})
    out = expand_samples(batch)
    assert out.column("id").to_pylist() == ["a-s0", "a-s1", "a-s2", "b"]
    assert out.column("request_id").to_pylist() == ["a", "a", "a", "b"]
    assert out.column("sample_index").to_pylist() == [0, 1, 2, 0]
    assert out.column("keep").to_pylist() == [1, 1, 1, 2]
    samp = [json.loads(s) for s in out.column("sampling").to_pylist()]
    assert [s["seed"] for s in samp] == [10, 11, 12, None] and all(s["n"] == 1 for s in samp)
    assert expand_samples(out).equals(out)  # idempotent


def test_finish_reason():
    assert finish_reason("boom", 0, 10) == "error"
    assert finish_reason(None, 10, 10) == "length"
    assert finish_reason(None, 3, 10) == "stop"
