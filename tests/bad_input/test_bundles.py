"""Bundles as the device reads them (``python3 -m engines``, in-process), and as the host checks them: the
manifest's schema (types, finite numbers, depth, paths inside the bundle), tampered files, and command lines
that survive any bundle path. Device entry points other than the manifest's validation (hash checks on every
entry point, unlisted files, symlinks, import isolation) are issue 11's and tested in tests/engines."""

from __future__ import annotations

import json
import shlex

import pytest

from tests.engines.device_fixtures import make_bundle

from .conftest import assert_one_line_error, edit_json, snapshot


@pytest.fixture
def device_bundle(work):
    return make_bundle(work / "bundle")


MANIFEST_CASES = {
    "path-traversal": (lambda m: m["files"].__setitem__("../outside.txt", "0" * 64),
                       "field files['../outside.txt']: expected a relative path inside the bundle"),
    "absolute-path": (lambda m: m["onnx"].__setitem__("file", "/etc/passwd"),
                      "field onnx.file: expected a relative path inside the bundle"),
    "gmacs-nan": (lambda m: m["model"].__setitem__("gmacs", float("nan")),
                  "field model.gmacs: expected a finite number, got nan"),
    "widths-inf": (lambda m: m["model"]["widths"].__setitem__("hidden", float("inf")),
                   "field model.widths.hidden: expected a finite number, got inf"),
    "std-zero": (lambda m: m["preprocess"].__setitem__("std", [0.2, 0.0, 0.2]), "field preprocess.std"),
    "params-string": (lambda m: m["model"].__setitem__("params", "many"), "field model.params"),
    "schema-version": (lambda m: m.__setitem__("schema_version", 7), "this engines package reads versions 1 and 2"),
}


@pytest.mark.parametrize("command", ["info", "verify", "trtexec-cmd"])
@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_manifest_schema_on_device(engines, work, device_bundle, case, command):
    change, message = MANIFEST_CASES[case]
    edit_json(device_bundle / "manifest.json", change)
    before = snapshot(work)
    result = engines(command, device_bundle, *(["--trt-version", "8.2.1"] if command == "trtexec-cmd" else []))
    assert_one_line_error(result, 2, message)
    assert snapshot(work) == before


def test_deep_manifest_is_bad_input(engines, device_bundle):
    """100k-deep JSON: exit 2 (bad input), as documented, not 1."""
    (device_bundle / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(engines("info", device_bundle), 2, "manifest.json: JSON nested too deeply")


def test_tampered_bundle_refused_by_verify(engines, device_bundle):
    data = bytearray((device_bundle / "model.onnx").read_bytes())
    (device_bundle / "model.onnx").write_bytes(bytes(data) + b"\0")
    assert_one_line_error(engines("verify", device_bundle), 2, "bundle file model.onnx: sha256 mismatch")


@pytest.mark.parametrize("name", ["with space", "quote's \"double\"", "$(touch pwned) `x`; rm -rf ~"])
def test_command_lines_survive_any_bundle_path(engines, work, name):
    """trtexec command lines are shell-quoted: what the shell would split is exactly the argv."""
    bundle = make_bundle(work / name)
    for stage in ("build", "bench"):
        flags = ["trtexec-cmd", bundle, "--stage", stage, "--trt-version", "8.2.1"]
        text, as_json = engines(*flags), engines(*flags, "--json")
        assert text.status == as_json.status == 0, text.err + as_json.err
        argv = json.loads(as_json.out.strip().splitlines()[-1])["argv"]
        assert shlex.split(text.out.strip().splitlines()[-1]) == argv and any(str(bundle) in a for a in argv)
    assert not (work / "pwned").exists()
