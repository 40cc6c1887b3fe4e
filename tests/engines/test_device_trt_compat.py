"""TensorRT API selection by version: pure, no TensorRT needed."""

import pytest
from snp_edge.engines.common.errors import EnginesError
from snp_edge.engines.trt_compat import api_for_version, parse_version


@pytest.mark.parametrize("text,expected", [
    ("8.2.1.8", (8, 2, 1, 8)),
    ("10.8.0.43", (10, 8, 0, 43)),
    ("8.2.1-1+cuda10.2", (8, 2, 1)),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --help", (8, 2, 1)),
    ("[TensorRT v100800]", (10, 8, 0)),
    ("v8601", (8, 6, 1)),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_parse_version_rejects_garbage():
    with pytest.raises(EnginesError, match="cannot read a TensorRT version"):
        parse_version("unknown")


def test_jetson_nano_8_2():
    api = api_for_version("8.2.1.8")
    assert api.explicit_batch_flag and api.fp16_flag and not api.strongly_typed
    assert api.workspace_api == "max_workspace_size" and api.io_api == "bindings"
    assert api.trtexec_workspace == "--workspace" and api.trtexec_explicit_batch
    assert api.trtexec_percentiles == "single" and api.export_times_warmups
    assert not api.trtexec_layer_precisions


def test_8_6_has_tensor_api_and_memory_pools():
    api = api_for_version((8, 6, 1))
    assert api.io_api == "tensors" and api.workspace_api == "memory_pool_limit"
    assert api.explicit_batch_flag and api.trtexec_explicit_batch
    assert api.trtexec_percentiles == "list" and not api.export_times_warmups


def test_10_x():
    api = api_for_version("10.8.0.43")
    assert not api.explicit_batch_flag and not api.trtexec_explicit_batch
    assert api.fp16_flag and api.strongly_typed and api.io_api == "tensors"
    assert api.trtexec_workspace == "--memPoolSize"


def test_11_has_no_fp16_flag():
    api = api_for_version((11, 0, 0))
    assert not api.fp16_flag and api.strongly_typed and not api.explicit_batch_flag


def test_too_old():
    with pytest.raises(EnginesError, match="TensorRT 8.0.1 is too old"):
        api_for_version((8, 0, 1))
