"""What a loop asks of a running vLLM engine about its weights (a vLLM worker extension).

vLLM mixes ``worker_extension_cls`` into each of its workers, and ``collective_rpc(name)`` calls
a method of it by name in every worker (no code is shipped to the engine, nothing is unpickled).
Loops use it to verify a weight swap: a successful start or reload is no proof that the new
weights are served (vLLM issues 32718 and 48312), so after every swap the loop compares these
checksums, read back from the engine, with the same sums computed from the model folder's files
(``synth_ray.loops.swap``).

Parameters compared: the token embedding, every RMSNorm weight and every layer's MLP down
projection, where the engine still holds them as tensors. vLLM keeps these under Hugging Face's
names (it fuses q/k/v and gate/up, not these). On CPU it repacks every linear weight into a
oneDNN handle and leaves an empty tensor in its place, so there the embedding and the norms are
what can be read back (empty tensors are skipped); full finetuning changes both. LoRA adapters
merged into linear layers change neither: the probe then reports ``differs_from_parent: false``
(it cannot tell the two models apart on CPU) rather than a false pass.
"""

from __future__ import annotations

PROBE_SUFFIXES = ("embed_tokens.weight", "norm.weight", "mlp.down_proj.weight")


def request_amx() -> bool | None:
    """Ask Linux for this process's permission to use AMX tiles (``arch_prctl``), as PyTorch's
    ``torch.cpu._init_amx`` does; None where the CPU has no AMX or torch no such call.

    Every engine process we start imports this module (the worker extension), so this runs in
    each vLLM worker before its first forward pass. Without it, on CPUs with AMX (Sapphire
    Rapids and later) in bfloat16, a first request of a single prompt token kills the worker
    with SIGILL (exit code -4; seen here with the tiny model and a one-token prompt): that
    forward reaches an AMX kernel before anything has asked for the permission, which the
    larger matrix products of a longer first prompt ask for on their way (through oneDNN).
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is there wherever vLLM is
        return None
    cpu = getattr(torch, "cpu", None)
    if not (hasattr(cpu, "_init_amx") and cpu._is_amx_tile_supported()):
        return None
    return bool(cpu._init_amx())


AMX_READY = request_amx()


def checksum_tensor(t) -> tuple[str, float, float, list[int]]:
    """(dtype, sum, sum of squares, shape) in float64 of a tensor as it is stored."""
    import torch

    d = t.detach().to(torch.float64)
    return str(t.dtype).removeprefix("torch."), float(d.sum()), float((d * d).sum()), list(t.shape)


class WeightProbe:
    """Mixed into vLLM's worker class (``engine_kwargs["worker_extension_cls"]``)."""

    def synth_ray_weight_checksums(self, suffixes=PROBE_SUFFIXES) -> dict:
        model = self.get_model()  # type: ignore[attr-defined]
        return {
            name: checksum_tensor(p)
            for name, p in model.named_parameters()
            if name.endswith(tuple(suffixes)) and p.numel() > 0
        }
