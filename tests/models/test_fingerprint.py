"""Model identity by content: the same weights anywhere share a fingerprint, new weights in the
same folder get a new one (request ids and judge cache keys are built from it)."""

from __future__ import annotations

import os
import shutil

import pytest

from synth_ray.models import fingerprint as F
from synth_ray.models.resolve import ResolvedModel, model_revision
from synth_ray.stages.records import request_id


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_RAY_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "llama"}')
    (d / "tokenizer.json").write_text('{"v": 1}')
    (d / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(4096))
    (d / "README.md").write_text("not part of the identity")
    return d


def _touch_later(path):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_same_content_elsewhere_same_fingerprint(folder, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(folder, copy)
    assert F.folder_fingerprint(folder) == F.folder_fingerprint(copy)
    assert F.folder_fingerprint(folder).startswith("fp-")


def test_retrained_in_place_changes_fingerprint_and_ids(folder):
    model = ResolvedModel("m", str(folder), "local")
    before = model.fingerprint
    rid = request_id("gen", "prompt", "{}", before)
    w = folder / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] = 7  # one weight byte, same size
    w.write_bytes(bytes(data))
    _touch_later(w)
    after = model.fingerprint
    assert after != before
    assert request_id("gen", "prompt", "{}", after) != rid
    assert model_revision(str(folder)) == after


def test_tokenizer_is_part_of_identity_but_readme_is_not(folder):
    fp = F.folder_fingerprint(folder)
    (folder / "README.md").write_text("edited")
    (folder / "training_args.bin").write_bytes(b"/some/output/path")  # trainer state
    assert F.folder_fingerprint(folder) == fp
    (folder / "tokenizer.json").write_text('{"v": 2}')
    _touch_later(folder / "tokenizer.json")
    assert F.folder_fingerprint(folder) != fp


def test_large_files_sampled_and_still_sensitive(folder, monkeypatch):
    monkeypatch.setattr(F, "FULL_HASH_BYTES", 1024)
    monkeypatch.setattr(F, "_WINDOW", 256)
    w = folder / "model.safetensors"
    fp = F.folder_fingerprint(folder)
    data = bytearray(w.read_bytes())
    data[-1] ^= 1  # the last window always covers the last byte
    w.write_bytes(bytes(data))
    _touch_later(w)
    F._MEMO.clear()
    assert F.folder_fingerprint(folder) != fp


def test_computed_once_then_remembered_on_disk(folder, monkeypatch):
    fp = F.folder_fingerprint(folder)
    F._MEMO.clear()
    monkeypatch.setattr(F, "_hash_file", lambda *a: pytest.fail("hashed again"))
    assert F.folder_fingerprint(folder) == fp


def test_not_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        F.folder_fingerprint(tmp_path)


def test_served_and_hub_identities():
    assert F.model_fingerprint("gpt-x", "served") == "served:gpt-x"
