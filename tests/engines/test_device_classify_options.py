"""``python3 -m engines classify`` honours the engine-selecting flags it accepts (``--target``, the batch profile,
``--workspace-mib``, ``--timing-cache``): the TensorRT backend gets the same EngineOptions ``build`` would use.

TensorRT does not run on this machine, so the test stops at the TensorRT backend's construction and reads the
options it was handed (ONNX Runtime, the bundle check and the option parsing are real)."""

from snp_edge.engines import classify as classify_module
from snp_edge.engines.cli import main
from snp_edge.engines.common.errors import MissingPrerequisite
from snp_edge.engines.inference import EngineOptions
from snp_edge.engines.manifest import open_bundle
from snp_edge.engines.profiles import profile_to_dict

from tests.engines.device_fixtures import REPO


def test_classify_passes_its_engine_flags_to_the_tensorrt_backend(bundle, tmp_path, monkeypatch, capsys):
    handed = []

    def tensorrt_backend(name, bundle_dir, manifest, options=None, *rest):
        handed.append((name, options))
        raise MissingPrerequisite("no TensorRT here")

    monkeypatch.setattr(classify_module, "make_backend", tensorrt_backend)
    timing_cache = str(tmp_path / "timing.cache")
    flags = ["--target", "rtx3090", "--min-batch", "2", "--opt-batch", "4", "--max-batch", "8",
             "--workspace-mib", "512", "--timing-cache", timing_cache]
    image = str(REPO / "export" / "reference" / "chelsea.png")
    assert main(["classify", str(bundle), image, "--backend", "tensorrt"] + flags) == 3
    assert capsys.readouterr().err.splitlines()[-1] == "error: no TensorRT here"
    [(name, options)] = handed
    want = EngineOptions.for_bundle(str(bundle), open_bundle(str(bundle)), "rtx3090", 2, 4, 8, 512,
                                    timing_cache=timing_cache)
    assert name == "tensorrt"
    assert profile_to_dict(options.profile) == profile_to_dict(want.profile)
    assert profile_to_dict(options.profile)["max"][0] == 8 and profile_to_dict(options.profile)["workspace_mib"] == 512
    assert options.timing_cache == timing_cache and options.cache_dir == want.cache_dir
