"""The swap probe on a real vLLM replica: an in-place reload is seen to serve the new weights,
and a reload that silently kept the old ones fails the probe; a restart serves the new model."""

from __future__ import annotations

import shutil

import pytest

from synth_ray.engines.vllm_engine import VLLMEngineConfig
from synth_ray.loops.swap import ServedModel, SwapError
from synth_ray.models.resolve import resolve_model

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def retrained(tiny_model, tmp_path_factory):
    """The tiny model with every weight moved a little: a stand-in for M_{t+1}."""
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("m1") / "model"
    shutil.copytree(tiny_model, out)
    weights = out / "model.safetensors"
    sd = load_file(str(weights))
    for name in sd:
        sd[name] = sd[name] + 0.05
    save_file(sd, str(weights), metadata={"format": "pt"})
    return str(out)


def test_reload_is_verified_and_a_silent_failure_caught(ray_local, tiny_model, retrained):
    cfg = VLLMEngineConfig(lifetime="run", max_num_seqs=8)
    served = ServedModel(cfg, mode="reload")
    m0, m1 = resolve_model(tiny_model), resolve_model(retrained)
    try:
        first = served.use(m0)
        assert first["ok"] and first["model"] == m0.fingerprint and len(first["greedy"]) == 2
        engine = served.engine
        real_reload = engine.reload
        engine.reload = lambda model: setattr(engine, "model", model)  # "succeeds", loads nothing
        with pytest.raises(SwapError, match="does not serve"):
            served.use(m1, parent=m0)
        engine.reload = real_reload
        served.model = m0
        probe = served.use(m1, parent=m0)
        assert probe["ok"] and probe["differs_from_parent"] and probe["swap"] == "reload"
        assert probe["model"] == m1.fingerprint != m0.fingerprint
        assert served.engine is engine and served.engine.starts == 1  # in place: no restart
        # a retrain that reproduced the served model: nothing loaded, still probed
        again = served.use(m1, parent=m0)
        assert again["swap"] == "none (already served)" and again["ok"]
        assert again["tensors_compared"] >= 3 and again["model"] == m1.fingerprint
    finally:
        served.release()


def test_restart_serves_the_new_model(ray_local, tiny_model, retrained):
    served = ServedModel(VLLMEngineConfig(lifetime="run", max_num_seqs=8), mode="restart")
    m0, m1 = resolve_model(tiny_model), resolve_model(retrained)
    try:
        served.use(m0)
        probe = served.use(m1, parent=m0)
        assert probe["ok"] and probe["differs_from_parent"] and probe["swap"] == "restart"
        assert served.starts == 1 and served.engine.starts == 1  # the old replica stopped
        assert served.use(m1)["swap"].startswith("none")  # same content: nothing to do
    finally:
        served.release()
    assert served.starts == 2
