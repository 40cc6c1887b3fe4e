"""Publishing outputs: refused before any work when the destination cannot take them (nothing left beside it),
any legal name and links handled, files written with the user's umask, and the same inputs giving the same
bytes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from .conftest import FAST_PRUNE, TINY, assert_one_line_error, snapshot


def _prune(snp, out, *extra):
    return snp("prune", *TINY, *FAST_PRUNE, "--out", out, "--json", *extra)


def test_existing_output_needs_force(snp, work):
    (work / "out").mkdir()
    (work / "out" / "mine.txt").write_text("the user's file")
    before = snapshot(work)
    assert_one_line_error(_prune(snp, work / "out"), 2, "already exists; pass --force to replace it", "prune")
    assert snapshot(work) == before


def test_current_folder_is_never_replaced(snp, work, monkeypatch):
    (work / "out").mkdir()
    (work / "out" / "mine.txt").write_text("the user's file")
    monkeypatch.chdir(work / "out")
    before = snapshot(work)
    result = snp("prune", *TINY, *FAST_PRUNE, "--out", ".", "--force", "--json")
    assert_one_line_error(result, 2, "refusing to replace .: it is the current folder or holds it", "prune")
    assert snapshot(work) == before


@pytest.mark.parametrize("argv, message", [
    (["prune", *TINY, *FAST_PRUNE, "--out", "{work}/" + "n" * 256], "its name is 256 bytes long; file names hold "
                                                                    "at most 255"),
    (["prune", *TINY, *FAST_PRUNE, "--out", "{work}/missing/out"], "folder {work}/missing does not exist"),
    (["prune", *TINY, *FAST_PRUNE, "--out", "/proc/snp-edge-x"], "cannot write /proc/snp-edge-x"),
    (["prune", *TINY, *FAST_PRUNE, "--out", "{work}/a-file", "--force"], "is a file; give a folder path"),
    (["export", "{pruned}", "--out", "{work}/a-dir", "--force"], "is a folder; give a file path"),
    (["bundle", "{pruned}", "--target", "jetson-nano", "--out", "{work}/b", "--archive", "--force"],
     "output {work}/b.tar.gz is a folder; give a file path"),
], ids=["name-256", "no-parent", "proc", "file-for-folder", "export-onto-folder", "archive-onto-folder"])
def test_destination_refused_before_work(snp, work, tiny_pruned, argv, message):
    if "/proc/" in " ".join(argv) and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    (work / "a-file").write_text("x")
    (work / "a-dir").mkdir()
    (work / "a-dir" / "keep").write_text("x")
    (work / "b.tar.gz").mkdir()
    before = snapshot(work)
    result = snp(*[a.format(work=work, pruned=tiny_pruned) for a in argv])
    assert_one_line_error(result, 2, message.format(work=work), argv[0])
    assert snapshot(work) == before


def test_legal_long_name_works(snp, work):
    """A 250-byte name is legal; the temporary sibling shortens its own name to fit."""
    out = work / ("n" * 250)
    result = _prune(snp, out)
    assert result.status == 0, result.err
    assert sorted(os.listdir(work)) == ["n" * 250]
    assert sorted(os.listdir(out)) == ["model.json", "model.safetensors"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_parent(snp, work):
    (work / "ro").mkdir()
    (work / "ro").chmod(0o555)
    try:
        assert_one_line_error(_prune(snp, work / "ro" / "out"), 2, "is not writable", "prune")
        assert os.listdir(work / "ro") == []
    finally:
        (work / "ro").chmod(0o755)


def _other_filesystem(work: Path) -> Path | None:
    for candidate in ("/dev/shm", "/run/user", "/tmp"):
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK) and \
                os.stat(candidate).st_dev != os.stat(work).st_dev:
            return Path(candidate)
    return None


def test_link_to_another_filesystem_is_replaced_not_followed(snp, work, tmp_path):
    """--out LINK --force, LINK pointing to a folder on another file system: the link itself is replaced by
    the output (renamed in its own folder: no EXDEV), and the folder it pointed to is untouched."""
    other = _other_filesystem(work)
    if other is None:
        pytest.skip("no second writable file system here")
    target = Path(os.path.realpath(other)) / f"snp-edge-test-{os.getpid()}-{tmp_path.name}"
    target.mkdir()
    try:
        (target / "theirs.txt").write_text("keep me")
        (work / "link").symlink_to(target)
        assert_one_line_error(_prune(snp, work / "link"), 2, "already exists; pass --force", "prune")
        assert (work / "link").is_symlink()
        result = _prune(snp, work / "link", "--force")
        assert result.status == 0, result.err
        assert not (work / "link").is_symlink() and sorted(os.listdir(work / "link")) == ["model.json",
                                                                                          "model.safetensors"]
        assert sorted(os.listdir(work)) == ["link"] and os.listdir(target) == ["theirs.txt"]
    finally:
        for p in target.iterdir():
            p.unlink()
        target.rmdir()


def _modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        found[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
    return found


def _expected(path: Path, mode: int, mask: int) -> int:
    executable = path.is_dir() or mode & 0o111
    return (0o777 if executable else 0o666) & ~mask


@pytest.mark.slow
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_follow_the_umask(snp, work, tiny_pruned, mask):
    """Pruned folders, ONNX files, bundles, tarballs and bench reports: the permissions a new file gets under
    the user's umask (0644/0755 under 022, 0600/0700 under 077), never mkstemp's or safetensors' 0600."""
    from tests.bench.test_bench_ingest import device_bench_json

    (work / "m.json").write_text(json.dumps(device_bench_json([3.0, 3.1, 2.9], True, 1.3)))
    previous = os.umask(mask)
    try:
        results = [_prune(snp, work / "pruned"),
                   snp("export", tiny_pruned, "--out", work / "m.onnx"),
                   snp("bundle", tiny_pruned, "--target", "jetson-nano", "--out", work / "b"),
                   snp("bundle", tiny_pruned, "--target", "jetson-nano", "--out", work / "t", "--archive"),
                   snp("bench", work / "m.json", "--out", work / "report")]
    finally:
        os.umask(previous)
    assert all(r.status == 0 for r in results), [r.err for r in results]
    for name in ("pruned", "m.onnx", "b", "t.tar.gz", "report"):
        for rel, mode in _modes(work / name).items():
            path = work / name / rel
            assert mode == _expected(path, mode, mask), (name, rel, oct(mode))
    assert _modes(work / "b")["scripts/build.sh"] == 0o777 & ~mask
    with tarfile.open(work / "t.tar.gz") as tar:
        for member in tar.getmembers():
            full = 0o777 if member.isdir() or member.mode & 0o111 else 0o666
            assert member.mode == full & ~mask, (member.name, oct(member.mode))
        assert tar.getmember("t/scripts/build.sh").mode == 0o777 & ~mask


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_identical_prunes_give_identical_files(snp, work):
    """Same inputs and seed: the same bytes in every file (model.safetensors' metadata included), with the
    data-driven default criteria on seeded calibration noise."""
    runs = [snp("prune", *TINY, "--target-gmacs", "0.004", "--calib-images", "8", "--out", work / name, "--json")
            for name in ("a", "b")]
    assert all(r.status == 0 for r in runs), [r.err for r in runs]
    assert _hashes(work / "a") == _hashes(work / "b") and len(_hashes(work / "a")) == 2


@pytest.mark.slow
def test_identical_exports_and_bundles(snp, work, tiny_pruned):
    """ONNX: byte-identical; bundles: every file identical, the manifest except its creation time."""
    for name in ("a", "b"):
        assert snp("export", tiny_pruned, "--out", work / f"{name}.onnx").status == 0
        assert snp("bundle", tiny_pruned, "--target", "rtx3090", "--out", work / name).status == 0
    assert (work / "a.onnx").read_bytes() == (work / "b.onnx").read_bytes()
    a, b = _hashes(work / "a"), _hashes(work / "b")
    assert {k for k in a if a[k] != b.get(k)} <= {"manifest.json"} and a.keys() == b.keys()
    ma, mb = (json.loads((work / n / "manifest.json").read_text()) for n in ("a", "b"))
    ma.pop("created"), mb.pop("created")
    assert ma == mb


def test_pruned_model_records_its_weights_hash(tiny_pruned):
    desc = json.loads((tiny_pruned / "model.json").read_text())
    assert desc["format_version"] == 2
    assert desc["weights_sha256"] == hashlib.sha256((tiny_pruned / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ten_class_data(tmp_path_factory):
    from tests.train.train_testutils import write_image_folder

    return write_image_folder(tmp_path_factory.mktemp("data") / "images", 10, 2, 1, size=32)


@pytest.mark.parametrize("argv, message", [
    (["--opt", "nosuchopt"], "--opt nosuchopt: Optimizer nosuchopt not found"),
    (["--sched", "nosuchsched"], "--sched nosuchsched: Unknown scheduler"),
    (["--lr", "nan"], "argument --lr: expected a finite number, got nan"),
], ids=["opt", "sched", "lr-nan"])
def test_failed_finetune_leaves_no_run_folder(snp, work, tiny_pruned, ten_class_data, argv, message):
    """A run that fails before its first checkpoint removes the run folder it created, so the rerun is not
    blocked by an empty --out."""
    result = snp("finetune", tiny_pruned, "--data", ten_class_data, "--epochs", "1", "--batch-size", "4",
                 "--steps-per-epoch", "1", "--workers", "0", "--no-aug", "--mixup", "0", "--cutmix", "0",
                 "--out", work / "run", "--json", *argv)
    assert_one_line_error(result, 2, message, "finetune")
    assert snapshot(work) == {}
