"""Save/load round trip, weights loading, determinism."""

from __future__ import annotations

import json

import pytest
import torch
from snp_edge.engines.common.errors import UserError

from snp_edge import load_pruned, prune, save_pruned
from snp_edge.errors import SnpEdgeError
from snp_edge.models import load_model
from snp_edge.saved import load_pruned_handle

SMALL = {"img_size": 64}


@pytest.fixture(scope="module")
def pruned_tiny():
    return prune("deit_tiny_patch16_224", weights="random", model_args=SMALL, preset="deit_t_0.6g",
                 calib_images=8)


def test_round_trip_is_exact(pruned_tiny, tiny_inputs, tmp_path):
    out = save_pruned(pruned_tiny.handle, tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    loaded = load_pruned(out)
    with torch.no_grad():
        assert torch.equal(loaded(tiny_inputs), pruned_tiny.handle.model(tiny_inputs))
    desc = json.loads((out / "model.json").read_text())
    assert desc["base_model"] == "deit_tiny_patch16_224" and desc["model_args"] == SMALL
    assert [b["qk"] for b in desc["arch"]["blocks"]] == [b.attn.qk_dim for b in loaded.blocks]
    assert "accuracy figures are meaningless" in desc["notice"]


def test_json_that_does_not_match_weights(pruned_tiny, tmp_path):
    out = save_pruned(pruned_tiny.handle, tmp_path / "m")
    desc = json.loads((out / "model.json").read_text())
    desc["arch"]["blocks"][2]["mlp"] += 1
    (out / "model.json").write_text(json.dumps(desc))
    with pytest.raises(SnpEdgeError, match=r"blocks\.2\.mlp\.fc1\.weight"):
        load_pruned(out)


def test_corrupt_weights_file(pruned_tiny, tmp_path):
    out = save_pruned(pruned_tiny.handle, tmp_path / "m")
    (out / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SnpEdgeError, match="corrupt"):
        load_pruned_handle(out)


def test_existing_output_needs_force(pruned_tiny, tmp_path):
    out = save_pruned(pruned_tiny.handle, tmp_path / "m")
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(UserError, match="--force"):
        save_pruned(pruned_tiny.handle, out)
    assert (out / "model.safetensors").read_bytes() == before
    save_pruned(pruned_tiny.handle, out, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folders left


@pytest.mark.slow
def test_weights_from_checkpoint_file(tmp_path, tiny_inputs):
    ref = load_model("deit_tiny_patch16_224", "random", SMALL)
    torch.save({"model": ref.model.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    from safetensors.torch import save_file

    save_file(ref.model.state_dict(), str(tmp_path / "w.safetensors"))
    for path in (tmp_path / "ckpt.pth", tmp_path / "w.safetensors"):
        handle = load_model("deit_tiny_patch16_224", str(path), SMALL)
        assert handle.accuracy_meaningful and handle.notice is None
        with torch.no_grad():
            assert torch.equal(handle.model(tiny_inputs), ref.model(tiny_inputs))


def test_mismatched_checkpoint_names_the_parameter(tmp_path):
    small = load_model("deit_tiny_patch16_224", "random", {"img_size": 64, "num_classes": 10})
    torch.save(small.model.state_dict(), tmp_path / "w.pth")
    with pytest.raises(SnpEdgeError, match=r"head\.weight \(10, 192\) vs model \(1000, 192\)"):
        load_model("deit_tiny_patch16_224", str(tmp_path / "w.pth"), SMALL)


def test_pretrained_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(SnpEdgeError, match="--weights random"):
        load_model("deit_tiny_patch16_224", "pretrained", SMALL)


def test_auto_weights_fall_back_loudly(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    handle = load_model("deit_tiny_patch16_224", "auto", SMALL)
    assert not handle.accuracy_meaningful and "meaningless" in handle.notice


@pytest.mark.slow
def test_same_inputs_same_model(calib_npy):
    def run(seed):
        return prune("deit_tiny_patch16_224", weights="random", model_args=SMALL, preset="deit_t_0.6g",
                     calib=calib_npy, calib_images=8, seed=seed, criteria="snp").handle.model.state_dict()

    a, b = run(0), run(0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = run(1)  # another calibration sample (8 of 12 images) changes the data-driven choices
    assert any(not torch.equal(a[k], c[k]) for k in a if k in c and a[k].shape == c[k].shape)
