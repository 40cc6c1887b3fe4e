"""onnx_macs / onnx_params against torch's FlopCounterMode and parameter count on a tiny ViT."""

import pytest
import torch
from snp_edge.bench.macs import onnx_macs, onnx_params
from torch.utils.flop_counter import FlopCounterMode

from snp_edge.errors import SnpEdgeError
from tests.bench.bench_testutils import TINY_ARGS, tiny_vit


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("width", [192, 96])
def test_onnx_macs_matches_flop_counter(onnx_pair, batch, width):
    path = onnx_pair[0] if width == 192 else onnx_pair[1]
    model = tiny_vit(width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch, 3, 32, 32))
    assert onnx_macs(path, batch) == counter.get_total_flops() // 2


def test_onnx_params_matches_model(onnx_pair):
    for path, width in zip(onnx_pair, (192, 96), strict=True):
        assert onnx_params(path) == sum(p.numel() for p in tiny_vit(width).parameters())


def test_unreadable_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(SnpEdgeError, match="cannot read ONNX"):
        onnx_macs(bad)


@pytest.mark.slow
def test_pruned_model_exported_by_export_stage(tmp_path):
    """The count from the ONNX graph equals the handle's (torch FLOP counter) after SNP and export."""
    from snp_edge.export.onnx_export import export_onnx

    from snp_edge import load_model, prune

    base = load_model("vit_tiny_patch16_224", "random", TINY_ARGS)
    pruned = prune(base, target_gmacs=base.gmacs / 2).handle
    path = tmp_path / "pruned.onnx"
    export_onnx(pruned, path)
    assert onnx_macs(path) == round(pruned.gmacs * 1e9)
    assert onnx_params(path) == pruned.params
