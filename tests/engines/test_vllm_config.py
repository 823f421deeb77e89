"""How the vllm engine configures ray.data.llm (no engine started here)."""

from synth_ray.engines import build_engine
from synth_ray.models.resolve import ResolvedModel


def _engine(**cfg):
    return build_engine({"type": "vllm", **cfg}, ResolvedModel("tiny", "/models/tiny", "tiny"))


def _on(stage) -> bool:
    return bool(getattr(stage, "enabled", stage))


def test_cpu_processor_config(monkeypatch):
    from synth_ray.engines import vllm_engine

    monkeypatch.setattr(vllm_engine, "_without_job_env", lambda env: env)  # no job env here
    pc = _engine(device="cpu", replicas=2).processor_config("prompt")
    assert [b.get("GPU", 0) for b in pc.placement_group_config["bundles"]] == [
        0
    ]  # no GPU asked for
    assert pc.concurrency == (2, 2) and pc.batch_size == 256 and pc.max_concurrent_batches == 2
    kw = pc.engine_kwargs
    # seeded requests crash vLLM's CPU backend when their prefill is split across steps
    assert kw["enable_chunked_prefill"] is False and kw["enforce_eager"] is True
    assert kw["disable_log_stats"] is True
    # every engine's workers import the worker extension, which asks for AMX permission first
    assert kw["worker_extension_cls"] == "synth_ray.engines.vllm_worker_ext.WeightProbe"
    assert pc.runtime_env["env_vars"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert pc.runtime_env["worker_process_setup_hook"].endswith("final_only_outputs")
    assert not _on(pc.tokenize_stage) and not _on(pc.detokenize_stage)
    assert not _on(pc.chat_template_stage)
    assert _on(_engine(device="cpu").processor_config("messages").chat_template_stage)


def test_no_ray_started_by_building_the_config():
    import ray

    was = ray.is_initialized()  # the session's Ray may already run when the whole suite does
    _engine(device="cpu").processor_config("prompt")
    assert ray.is_initialized() == was


def test_job_env_is_not_merged_twice(monkeypatch):
    import pytest
    import ray

    from synth_ray.engines.vllm_engine import _without_job_env

    class Ctx:
        runtime_env = {"env_vars": {"A": "1", "B": "2"}}

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: Ctx())
    assert _without_job_env({"A": "1", "C": "3"}) == {"C": "3"}
    with pytest.raises(ValueError, match="B: engine wants '9', job sets '2'"):
        _without_job_env({"B": "9"})


def test_gpu_processor_config():
    pc = _engine(device="gpu", tensor_parallel_size=2, accelerator_type="A100").processor_config(
        "prompt"
    )
    assert pc.placement_group_config["bundle_per_worker"] == {"GPU": 1.0, "CPU": 1.0}
    assert pc.accelerator_type == "A100" and pc.engine_kwargs["tensor_parallel_size"] == 2
    assert (
        "enable_chunked_prefill" not in pc.engine_kwargs
        and pc.engine_kwargs["enforce_eager"] is False
    )
    assert "env_vars" not in pc.runtime_env


def test_setup_hook_patches_the_stage_once():
    from ray.llm._internal.batch.stages.vllm_engine_stage import vLLMEngineWrapper

    from synth_ray.engines.vllm_actor_setup import final_only_outputs

    before = vLLMEngineWrapper._prepare_llm_request
    try:
        final_only_outputs()
        patched = vLLMEngineWrapper._prepare_llm_request
        assert patched._synth_ray_final_only and patched is not before
        final_only_outputs()  # idempotent
        assert vLLMEngineWrapper._prepare_llm_request is patched
    finally:
        vLLMEngineWrapper._prepare_llm_request = before


def test_pool_batch_size_spreads_small_datasets():
    from synth_ray.engines.vllm_engine import VLLMEngineConfig, _pool_batch_size

    c = VLLMEngineConfig(replicas=2, batch_size=256, max_concurrent_batches=2)
    assert _pool_batch_size(c, None) == 256
    assert _pool_batch_size(c, 12) == 3  # 4 batches: 2 in flight on each replica
    assert _pool_batch_size(c, 1) == 1
    assert _pool_batch_size(c, 100_000) == 256
    # the rows per call, by which the generation stage splits and writes its output
    pool = _engine(replicas=2, batch_size=256, lifetime="run")
    assert pool.rows_per_call(12) == 3 and pool.rows_per_call(100_000) == 256
    assert _engine(replicas=2, batch_size=256, lifetime="dataset").rows_per_call(12) == 256


def test_cpu_threads_and_dtype(monkeypatch, tmp_path):
    """One CPU replica computes on every core; several leave binding to the OS; half-precision
    weights run as float32 on a CPU without bf16 instructions (benchmarks/README.md)."""
    from synth_ray.engines import vllm_engine

    has_half = vllm_engine.cpu_has_half_precision
    monkeypatch.setattr(vllm_engine, "_without_job_env", lambda env: env)
    monkeypatch.setattr(vllm_engine, "cpu_has_half_precision", lambda *a: False)
    kw, _, _, env = _engine(device="cpu").engine_setup()
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0" and kw["dtype"] == "float32"
    _, _, _, env = _engine(device="cpu", replicas=2, num_cpus=1).engine_setup()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind" and env["OMP_NUM_THREADS"] == "1"
    kw, _, _, env = _engine(device="cpu", cpu_threads="vllm", dtype="bfloat16").engine_setup()
    assert kw["dtype"] == "bfloat16" and not {
        "VLLM_CPU_NUM_OF_RESERVED_CPU",
        "OMP_NUM_THREADS",
    } & set(env)
    monkeypatch.setattr(vllm_engine, "cpu_has_half_precision", lambda *a: True)
    assert _engine(device="cpu").engine_setup()[0]["dtype"] == "auto"
    kw, _, _, env = _engine(device="gpu").engine_setup()
    assert kw["dtype"] == "auto" and "VLLM_CPU_NUM_OF_RESERVED_CPU" not in env

    # a small local model (the tiny one) is Python-bound: vLLM's own binding
    small = tmp_path / "small"
    small.mkdir()
    (small / "model.safetensors").write_bytes(b"0" * 1024)
    engine = build_engine({"type": "vllm", "device": "cpu"}, ResolvedModel("s", str(small), "s"))
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in engine.engine_setup()[3]

    info = tmp_path / "cpuinfo"
    info.write_text("flags : fpu avx2 avx512f avx512_vnni\n")
    assert has_half(str(info)) is False
    info.write_text("flags : fpu avx512f avx512_bf16 amx_tile\n")
    assert has_half(str(info)) is True


def test_amx_permission_is_asked_where_the_cpu_has_amx():
    import torch

    from synth_ray.engines import vllm_worker_ext

    amx = torch.cpu._is_amx_tile_supported()
    assert vllm_worker_ext.AMX_READY is (True if amx else None)
    assert vllm_worker_ext.request_amx() is (True if amx else None)  # asking again is harmless
