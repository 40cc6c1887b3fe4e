"""Issue 20 #7 and #8: statuses and reproducibility. A device Python without numpy is a missing prerequisite
(3) with the install hint, not "unexpected ModuleNotFoundError" (2); two ``bundle --archive`` runs on the
same input are byte-identical."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.engines.device_fixtures import make_bundle

from .conftest import snapshot

PY36_BARE = Path.home() / ".pyenv" / "versions" / "3.6.15" / "bin" / "python3.6"  # no numpy, no Pillow


@pytest.mark.slow
@pytest.mark.skipif(not PY36_BARE.is_file(), reason="no bare CPython 3.6 (pyenv 3.6.15) here")
def test_missing_numpy_is_status_3_with_the_hint(work):
    bundle = make_bundle(work / "bundle", with_code=True, with_images=True)
    check = subprocess.run([str(PY36_BARE), "-I", "-c", "import numpy"], capture_output=True)
    if check.returncode == 0:
        pytest.skip("this CPython 3.6 has numpy")
    before = snapshot(work)
    image = str(bundle / "reference" / "images" / "chelsea.png")
    for argv in (["verify", str(bundle), "--backend", "onnxruntime"], ["classify", str(bundle), image],
                 ["bench", str(bundle), "--backend", "onnxruntime", "--runs", "1"]):
        res = subprocess.run([str(PY36_BARE), "-I", "-B", str(bundle / "engines" / "__main__.py"), *argv],
                             capture_output=True, text=True, timeout=120)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.returncode == 3 and len(lines) == 1, (argv, res.stderr)
        assert lines[0].startswith(("error: numpy does not import", "error: onnxruntime does not import",
                                    "error: Pillow does not import")), res.stderr
        if argv[0] == "verify":
            assert "python3 -m pip install --user numpy" in lines[0] or "onnxruntime" in lines[0]
    assert snapshot(work) == before


@pytest.mark.slow
def test_bundle_archive_is_reproducible(snp, tiny_pruned, work, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01T00:00:00Z
    paths = []
    for name in ("a", "b"):
        result = snp("bundle", tiny_pruned, "--target", "jetson-nano", "--out", work / name, "--archive")
        assert result.status == 0, result.err
        paths.append(work / f"{name}.tar.gz")
    first, second = (p.read_bytes() for p in paths)
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    import io
    import tarfile

    def members(data):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return [(m.name.split("/", 1)[-1], m.mtime, m.uid, m.uname) for m in tar.getmembers()]

    names = [m[0] for m in members(first)]
    assert names[1:] == sorted(names[1:]) and {m[1] for m in members(first)} == {1767225600}
    assert {(m[2], m[3]) for m in members(first)} == {(0, "")}
    assert [m[0] for m in members(second)][1:] == names[1:]  # the same members under another top folder (b/)
    again = snp("bundle", tiny_pruned, "--target", "jetson-nano", "--out", work / "a", "--archive", "--force")
    assert again.status == 0 and (work / "a.tar.gz").read_bytes() == first  # byte-identical


INFO_CASES = {
    "mlp-above-base": (lambda d: d["arch"]["blocks"][0].__setitem__("mlp", 300),
                       "field arch.blocks[0].mlp: expected an integer in [0, 256], got 300"),
    "embed-above-base": (lambda d: d["arch"].__setitem__("embed", 65), "field arch.embed: expected an integer in "
                                                                       "[1, 64], got 65"),
    "index-out-of-range": (lambda d: d["arch"]["blocks"][1].__setitem__("index", 7), "field arch.blocks[1].index"),
    "resnet50": (lambda d: d.__setitem__("base_model", "resnet50"), "(ResNet): not a timm VisionTransformer"),
    "path": (lambda d: d.__setitem__("base_model", "../../etc/passwd"), "unknown model '../../etc/passwd'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", INFO_CASES)
def test_info_applies_exports_model_json_checks(snp, work, pruned_copy, case):
    """`snp-edge info` printed model.json files that `export` refuses as valid."""
    from .conftest import assert_one_line_error, edit_json

    change, message = INFO_CASES[case]
    edit_json(pruned_copy / "model.json", change)
    before = snapshot(work)
    assert_one_line_error(snp("info", pruned_copy), 2, message, "info")
    export = snp("export", pruned_copy, "--out", work / "m.onnx", "--no-verify")
    assert export.status == 2 and message in export.err.splitlines()[-1]
    assert snapshot(work) == before
