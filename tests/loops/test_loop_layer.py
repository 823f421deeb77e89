"""The loop layer's bookkeeping without Ray: stages skipped once done, manifests written
atomically, failures recorded, lineage lines, and the swap probe's verdict on recorded sums."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from synth_ray.loops.base import Iteration, dataset_record, lineage_lines, read_manifests
from synth_ray.loops.swap import compare
from synth_ray.stages.records import write_table_dir


def test_stage_runs_once_and_is_skipped_after(tmp_path):
    calls = []
    it = Iteration(str(tmp_path), 0, "run-a")
    r = it.stage("augment", lambda: calls.append(1) or {"pairs": 3})
    assert r == {"pairs": 3} and calls == [1]
    again = Iteration(str(tmp_path), 0, "run-b")  # a rerun reads the manifest back
    r2 = again.stage("augment", lambda: calls.append(2) or {"pairs": 99})
    assert r2 == {"pairs": 3} and calls == [1] and again.skipped == ["augment"]
    m = json.loads((tmp_path / "iter_0" / "manifest.json").read_text())
    assert m["stages"]["augment"]["status"] == "done"
    assert m["stages"]["augment"]["run_id"] == "run-a"
    assert m["run_ids"] == ["run-a", "run-b"]


def test_failed_stage_is_recorded_and_rerun(tmp_path):
    it = Iteration(str(tmp_path), 1, "run-a")

    def boom():
        raise RuntimeError("engine died")

    with pytest.raises(RuntimeError):
        it.stage("curate", boom)
    m = json.loads((tmp_path / "iter_1" / "manifest.json").read_text())
    assert m["stages"]["curate"]["status"] == "failed"
    assert "engine died" in m["stages"]["curate"]["error"]
    it2 = Iteration(str(tmp_path), 1, "run-b")
    assert it2.stage("curate", lambda: {"ok": 1}) == {"ok": 1}
    m = json.loads((tmp_path / "iter_1" / "manifest.json").read_text())
    assert m["stages"]["curate"]["status"] == "done" and m["stages"]["curate"]["attempts"] == 2
    assert "error" not in m["stages"]["curate"]


def test_running_stage_left_by_a_kill_is_run_again(tmp_path):
    it = Iteration(str(tmp_path), 0, "run-a")
    it.manifest["stages"]["train"] = {"status": "running"}
    it.save()
    ran = []
    Iteration(str(tmp_path), 0, "run-b").stage("train", lambda: ran.append(1) or {})
    assert ran == [1]


def test_datasets_filed_and_lineage(tmp_path):
    data = tmp_path / "d"
    write_table_dir(str(data), pa.table({"id": ["b", "a"], "x": [1, 2]}))
    rec = dataset_record(str(data))
    assert rec["rows"] == 2 and rec["hash"]
    same = tmp_path / "e"
    write_table_dir(str(same), pa.table({"id": ["a", "b"], "x": [2, 1]}))
    assert dataset_record(str(same))["hash"] == rec["hash"]  # content, not order or path
    it = Iteration(str(tmp_path), 0, "run-a")
    it.manifest["parent_model"] = {"spec": "tiny", "fingerprint": "fp-0123"}
    it.manifest["model_out"] = {"fingerprint": "fp-4567"}
    it.manifest["datasets"]["augmented"] = {**rec, "role": "in"}
    it.manifest["probe"] = {"ok": True}
    it.stage("select", lambda: {"datasets": {"train_data": rec}})
    it.finish({"A5": 3})
    (line,) = lineage_lines(str(tmp_path))
    assert "iter 0 [done, 1/1 stages]" in line
    assert "tiny fp-0123 -> fp-4567" in line
    assert "augmented=2" in line and "select.train_data=2" in line
    assert "probe: ok" in line and '"A5": 3' in line
    assert read_manifests(str(tmp_path))[0]["metrics"] == {"A5": 3}


def test_lineage_without_manifests(tmp_path):
    with pytest.raises(FileNotFoundError, match="no iteration manifests"):
        lineage_lines(str(tmp_path))


# (dtype, sum, sum of squares, shape), as the worker extension reports them
NEW = {
    "model.embed_tokens.weight": ["bfloat16", 1.5, 10.0, [4, 2]],
    "model.layers.0.mlp.down_proj.weight": ["bfloat16", -0.25, 3.0, [2, 4]],
}
OLD = {**NEW, "model.layers.0.mlp.down_proj.weight": ["bfloat16", -0.5, 3.1, [2, 4]]}


def test_probe_passes_when_every_replica_serves_the_new_weights():
    v = compare([NEW, dict(NEW)], NEW, OLD)
    assert v["ok"] and v["replicas"] == 2 and v["tensors_compared"] == 2
    assert v["differs_from_parent"] is True


def test_probe_fails_when_a_replica_still_serves_the_old_weights():
    v = compare([NEW, OLD], NEW, OLD)
    assert not v["ok"] and v["mismatched"] == ["model.layers.0.mlp.down_proj.weight"]


def test_probe_fails_on_dtype_or_shape_or_missing_tensor():
    wrong_dtype = {**NEW, "model.embed_tokens.weight": ["float32", 1.5, 10.0, [4, 2]]}
    assert not compare([wrong_dtype], NEW, None)["ok"]
    missing = {"model.embed_tokens.weight": NEW["model.embed_tokens.weight"]}
    assert not compare([missing], NEW, None)["ok"]
    assert not compare([], NEW, None)["ok"]  # no replica answered
    assert not compare([NEW], {}, None)["ok"]  # nothing compared proves nothing


def test_probe_says_when_parent_weights_are_identical():
    assert compare([NEW], NEW, dict(NEW))["differs_from_parent"] is False


class _Engine:
    def __init__(self):
        self.closed = False
        self.starts = 1

    def close(self):
        self.closed = True


def test_restart_frees_the_engines_before_training():
    from synth_ray.engines.vllm_engine import VLLMEngineConfig
    from synth_ray.loops.swap import ServedModel

    served = ServedModel(VLLMEngineConfig(), mode="restart")
    engine = served.engine = _Engine()
    served.before_training({"num_workers": 2, "use_gpu": True})
    assert engine.closed and served.engine is None and served.starts == 1


def test_reload_fails_clearly_when_the_cluster_cannot_hold_both(monkeypatch):
    import ray

    from synth_ray.engines.vllm_engine import VLLMEngineConfig
    from synth_ray.loops.swap import ServedModel, SwapError

    cfg = VLLMEngineConfig(device="gpu", replicas=2, num_gpus=1.0)
    served = ServedModel(cfg, mode="reload")
    served.engine = _Engine()
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 4.0})
    served.before_training({"num_workers": 2, "use_gpu": True})  # 2 + 2 GPUs: fits
    assert not served.engine.closed
    with pytest.raises(SwapError, match=r"GPU: need 5, cluster has 4.*swap: restart"):
        served.before_training({"num_workers": 3, "use_gpu": True})
