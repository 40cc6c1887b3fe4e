"""`finetune` / `eval` bad input: one-line errors, exit 1, nothing written or overwritten; eval of every model kind."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from snp_edge.cli import main
from tests.train.train_testutils import make_pruned, write_image_folder


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, command: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"snp-edge {command}: error: "), err
    return lines[0]


QUICK = ["--epochs", "1", "--batch-size", "4", "--workers", "0", "--json"]


@pytest.fixture(scope="module")
def other_pruned(tmp_path_factory):
    """A tiny pruned model with 4 classes (a wrong teacher, a foreign checkpoint)."""
    return make_pruned(tmp_path_factory.mktemp("other"), num_classes=4, seed=1)


def test_bad_data_folders(capsys, tiny_pruned, tiny_data, tmp_path):
    out = tmp_path / "run"
    msg = _one_line_error(*_run(capsys, "finetune", tiny_pruned, "--data", tmp_path / "nope", "--out", out, *QUICK)[::2],
                          "finetune")
    assert "not found" in msg
    no_val = tmp_path / "noval"
    shutil.copytree(tiny_data / "train", no_val / "train")
    assert "no val/" in _one_line_error(*_run(capsys, "finetune", tiny_pruned, "--data", no_val, "--out", out,
                                              *QUICK)[::2], "finetune")
    empty = tmp_path / "empty"
    (empty / "train" / "a").mkdir(parents=True)
    (empty / "val" / "a").mkdir(parents=True)
    assert "ImageFolder" in _one_line_error(*_run(capsys, "finetune", tiny_pruned, "--data", empty, "--out", out,
                                                  *QUICK)[::2], "finetune")
    four = write_image_folder(tmp_path / "four", 4, 2, 1)
    msg = _one_line_error(*_run(capsys, "finetune", tiny_pruned, "--data", four, "--out", out, *QUICK)[::2],
                          "finetune")
    assert "4 classes" in msg and "3 outputs" in msg
    assert not out.exists()


def test_teacher_with_other_class_count(capsys, tiny_pruned, tiny_data, other_pruned, tmp_path):
    out = tmp_path / "run"
    msg = _one_line_error(*_run(capsys, "finetune", tiny_pruned, "--data", tiny_data, "--teacher", other_pruned,
                                "--out", out, *QUICK)[::2], "finetune")
    assert "teacher has 4 classes" in msg and not out.exists()


@pytest.mark.slow
def test_existing_output_and_foreign_resume_are_refused(capsys, tiny_pruned, tiny_data, other_pruned, tmp_path):
    out = tmp_path / "run"
    assert _run(capsys, "finetune", tiny_pruned, "--data", tiny_data, "--out", out, *QUICK, "--no-aug")[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert "--force" in _one_line_error(*_run(capsys, "finetune", tiny_pruned, "--data", tiny_data, "--out", out,
                                              *QUICK)[::2], "finetune")
    other_data = write_image_folder(tmp_path / "four", 4, 2, 1)
    foreign = tmp_path / "foreign"
    assert _run(capsys, "finetune", other_pruned, "--data", other_data, "--out", foreign, *QUICK, "--batch-size",
                "2")[0] == 0
    msg = _one_line_error(*_run(capsys, "finetune", tiny_pruned, "--data", tiny_data, "--out", out, *QUICK,
                                "--resume", foreign / "checkpoint.pt")[::2], "finetune")
    assert "from another model" in msg
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing overwritten


def test_eval_pruned_timm_and_onnx(capsys, tiny_pruned, tiny_data, tmp_path):
    from snp_edge.export.onnx_export import export_onnx

    from snp_edge.saved import load_pruned_handle

    code, out, _ = _run(capsys, "eval", tiny_pruned, "--data", tiny_data, "--workers", "0", "--json")
    torch_res = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and torch_res["images"] == 12 and torch_res["top1"] <= torch_res["top5"] == 100.0
    onnx_path = tmp_path / "model.onnx"
    export_onnx(load_pruned_handle(tiny_pruned), onnx_path)
    code, out, _ = _run(capsys, "eval", onnx_path, "--data", tiny_data / "val", "--workers", "0", "--json")
    onnx_res = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and onnx_res["top1"] == torch_res["top1"] and onnx_res["notice"]  # DeiT preprocessing assumed
    args = ["--model-arg", "img_size=16", "--model-arg", "patch_size=4", "--model-arg", "embed_dim=32",
            "--model-arg", "depth=2", "--model-arg", "num_heads=2", "--model-arg", "num_classes=3"]
    code, out, _ = _run(capsys, "eval", "deit_tiny_patch16_224", *args, "--weights", "random", "--data", tiny_data,
                        "--workers", "0", "--json")
    assert code == 0 and "meaningless" in json.loads(out.strip().splitlines()[-1])["notice"]
    four = write_image_folder(tmp_path / "four", 4, 1, 1)
    assert "4 classes" in _one_line_error(*_run(capsys, "eval", onnx_path, "--data", four)[::2], "eval")


@pytest.mark.slow
def test_attention_fidelity_against_original_and_self(capsys, tiny_pruned, tiny_data):
    from snp_edge.models import load_model
    from snp_edge.saved import load_pruned_handle, read_description
    from snp_edge.train.data import eval_loader, eval_transform, load_split
    from snp_edge.train.fidelity import attention_fidelity

    code, out, _ = _run(capsys, "eval", tiny_pruned, "--data", tiny_data, "--attention-fidelity", "--workers", "0",
                        "--json")
    fid = json.loads(out.strip().splitlines()[-1])["fidelity"]
    assert code == 0 and len(fid["blocks"]) == 2 and fid["images"] == 12
    assert fid["attention_kl"] > 0 and 0 < fid["attention_cosine"] < 1 and fid["logits_kl"] > 0
    desc = read_description(tiny_pruned)
    base = load_model(desc["base_model"], desc["weights"], desc["model_args"])
    loader = eval_loader(load_split(tiny_data, "val", eval_transform(base.data_config)), 4)
    same = attention_fidelity(base.model, base.model, loader)
    assert same.attention_kl == pytest.approx(0, abs=1e-6) and same.attention_cosine == pytest.approx(1, abs=1e-5)
    assert same.logits_kl == pytest.approx(0, abs=1e-6) and same.top1_agreement == 100
    pruned = load_pruned_handle(tiny_pruned)
    direct = attention_fidelity(pruned.model, base.model, loader, pruned.arch)
    assert direct.attention_kl == pytest.approx(fid["attention_kl"], rel=1e-5)
    with torch.no_grad():
        assert torch.isfinite(pruned.model(torch.zeros(1, 3, 16, 16))).all()
