"""Fine-tuning: outputs, resume after a real interruption, torchrun DDP == one process, atomic checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from snp_edge.cli import main
from snp_edge.saved import load_pruned_handle, read_description
from snp_edge.train.checkpoint import CHECKPOINT_FILE, save_checkpoint
from tests.train.train_testutils import ENV, REPO, run_cli

# deterministic recipe: no augmentation, no mixup, no drop-path; distillation from the original model
PLAIN = ["--no-aug", "--mixup", "0", "--cutmix", "0", "--reprob", "0", "--drop-path", "0", "--workers", "0",
         "--warmup-epochs", "1", "--lr", "1e-3", "--json"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _log(out: Path) -> list[dict]:
    path = out / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
def test_finetune_writes_checkpoint_log_and_pruned_models(tiny_pruned, tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune", str(tiny_pruned), "--data", str(tiny_data), "--out", str(out), "--epochs", "2",
                 "--batch-size", "8", "--model-ema", "--model-ema-decay", "0.9", "--smoothing", "0.1",
                 "--workers", "0", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epoch"] == 1 and 0 <= summary["best"] <= 100
    rows = _log(out)
    assert [r["epoch"] for r in rows] == [0, 1]
    for key in ("train_loss", "val_top1", "val_top5", "lr", "images_per_s", "ema_top1"):
        assert all(key in r for r in rows)
    assert (out / CHECKPOINT_FILE).is_file() and not list(out.glob(".*tmp*"))
    parent = read_description(tiny_pruned)
    for name in ("best", "last"):
        handle = load_pruned_handle(out / name)  # the pruned-model format: export takes it directly
        assert handle.arch == parent["arch"]
        desc = read_description(out / name)
        assert desc["weights"] == parent["weights"]  # still names the original model (teacher "original")
        assert desc["finetune"]["ema"] is True and desc["pruning"] == parent["pruning"]


@pytest.mark.slow
def test_resume_after_kill_reproduces_uninterrupted_run(tiny_pruned, tiny_data, tmp_path):
    args = ["finetune", str(tiny_pruned), "--data", str(tiny_data), "--epochs", "5", "--batch-size", "4",
            "--mixup", "0.8", "--cutmix", "1.0", "--aa", "rand-m9-mstd0.5", "--reprob", "0.25", "--drop-path", "0.1",
            "--workers", "0", "--warmup-epochs", "1", "--lr", "1e-3", "--model-ema", "--json"]
    full = tmp_path / "full"
    assert main([*args, "--out", str(full)]) == 0  # in-process, one thread, like the subprocesses
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "snp_edge.train", *args, "--out", str(cut)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 90
    while not _log(cut) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # a hard interruption: no cleanup runs
    proc.wait()
    done = len(_log(cut))
    assert 1 <= done < 5, f"the run was not interrupted mid-way ({done} epochs logged)"
    res = run_cli(*args, "--out", str(cut), "--resume")
    assert res.returncode == 0, res.stderr
    assert [r["epoch"] for r in _log(cut)] == list(range(5))
    a, b = _weights(full / "last"), _weights(cut / "last")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"
    assert [r["val_top1"] for r in _log(full)] == [r["val_top1"] for r in _log(cut)]


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tiny_pruned, tiny_data, tmp_path):
    common = ["finetune", str(tiny_pruned), "--data", str(tiny_data), "--epochs", "2", *PLAIN]
    one = tmp_path / "one"
    assert main([*common, "--batch-size", "8", "--out", str(one)]) == 0
    two = tmp_path / "two"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "snp_edge.train", *common, "--batch-size", "4", "--out", str(two)],
                         cwd=REPO, capture_output=True, text=True, timeout=180, env=ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    a, b = _weights(one / "last"), _weights(two / "last")
    moved = max((a[k] - load_file(str(tiny_pruned / "model.safetensors"))[k]).abs().max().item() for k in a)
    assert moved > 1e-3  # training changed the weights ...
    for k in a:  # ... identically, up to float reduction order
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=k)
    la, lb = _log(one), _log(two)
    assert [r["val_top1"] for r in la] == [r["val_top1"] for r in lb]
    assert la[-1]["train_loss"] == pytest.approx(lb[-1]["train_loss"], rel=1e-4)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_FILE
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    real_save = torch.save

    def crash_midway(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")  # some bytes reach the disk, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", real_save)
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]
