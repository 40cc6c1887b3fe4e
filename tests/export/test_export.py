"""ONNX export: shrunk widths in the graph, TensorRT 8.2 allow-list, parity with PyTorch, atomic output."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from snp_edge.export.onnx_export import attention_widths, export_onnx
from snp_edge.export.parity import compare
from snp_edge.export.trt_ops import check_graph

from snp_edge import prune
from snp_edge.cli import main
from snp_edge.errors import SnpEdgeError
from snp_edge.models import load_model

SMALL = {"img_size": 64}


@pytest.fixture(scope="module")
def pruned_tiny():
    return prune("deit_tiny_patch16_224", weights="random", model_args=SMALL, preset="deit_t_0.6g",
                 criteria="l1", heads=2).handle


@pytest.mark.slow
@pytest.mark.parametrize("opset", [13, 17])
def test_pruned_export_carries_widths_and_matches(pruned_tiny, tmp_path, opset):
    result = export_onnx(pruned_tiny, tmp_path / "m.onnx", opset=opset)
    graph = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(graph, full_check=True)
    want = [{"heads": b["heads"], "qk": b["qk"], "v": b["v"]} for b in pruned_tiny.arch["blocks"]]
    assert attention_widths(graph) == want == result.attention
    weights = {i.name: tuple(i.dims) for i in graph.graph.initializer}
    for i, b in enumerate(pruned_tiny.arch["blocks"]):
        assert weights[f"blocks.{i}.attn.qkv.weight"] == (b["heads"] * (2 * b["qk"] + b["v"]), 153)
        assert weights[f"blocks.{i}.attn.proj.weight"] == (153, b["heads"] * b["v"])  # Gemm, transB=1
    assert [p.batch for p in result.parity] == [1, 8]
    assert all(p.max_abs <= 1e-4 and p.top1_agreement == 1.0 for p in result.parity)
    ops = {n.op_type for n in graph.graph.node}
    assert ("LayerNormalization" in ops) == (opset >= 17)
    assert "Erf" in ops and "Softmax" in ops and not any("Attention" in o for o in ops)
    assert graph.graph.input[0].name == "input" and graph.graph.output[0].name == "logits"
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


@pytest.mark.slow
def test_softmax_scale_folded(tmp_path, pruned_tiny):
    """The query rows of qkv are multiplied by the softmax scale (1/8 for head_dim 64: exact in float32), the
    rest is untouched, and the graph has no scale Mul left; the ONNX weights are the folded ones."""
    from onnx import numpy_helper
    from snp_edge.export.prepare import export_copy

    folded = export_copy(pruned_tiny.model)
    for blk, orig in zip(folded.blocks, pruned_tiny.model.blocks, strict=True):
        rows = blk.attn.num_heads * blk.attn.qk_dim
        assert blk.attn.scale == 1.0 and orig.attn.scale == 64 ** -0.5
        assert torch.equal(blk.attn.qkv.weight[:rows], orig.attn.qkv.weight[:rows] * 0.125)
        assert torch.equal(blk.attn.qkv.bias[:rows], orig.attn.qkv.bias[:rows] * 0.125)
        assert torch.equal(blk.attn.qkv.weight[rows:], orig.attn.qkv.weight[rows:])
    export_onnx(pruned_tiny, tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx")
    assert [n for n in graph.graph.node if n.op_type == "Mul" and "attn" in n.name] == []
    weights = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    w = weights["blocks.0.attn.qkv.weight"]
    ref = folded.blocks[0].attn.qkv.weight.detach().numpy()
    assert np.array_equal(w if w.shape == ref.shape else w.T, ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"])
def test_unpruned_baselines_export(tmp_path, name):
    handle = load_model(name, "random", SMALL)
    result = export_onnx(handle, tmp_path / "m.onnx")
    assert result.attention == [{"heads": 3, "qk": 64, "v": 64}] * 12
    assert max(p.max_abs for p in result.parity) <= 1e-4


@pytest.mark.slow
def test_deit_small_preset_full_size(tmp_path):
    handle = prune("deit_small_patch16_224", weights="random", preset="deit_s_1.3g", criteria="l1").handle
    result = export_onnx(handle, tmp_path / "s.onnx")
    assert [a["qk"] for a in result.attention] == [26, 20, 20] + [13] * 9
    assert max(p.max_abs for p in result.parity) <= 1e-4


@pytest.mark.slow
def test_allow_list_names_the_offending_node(tmp_path, pruned_tiny):
    export_onnx(pruned_tiny, tmp_path / "m17.onnx", opset=17)
    graph = onnx.load(tmp_path / "m17.onnx")
    with pytest.raises(SnpEdgeError, match="opset 17 cannot be parsed by trt8.2"):
        check_graph(graph, "trt8.2")
    graph.opset_import[0].version = 13  # pretend: the LayerNormalization node is what must be named
    with pytest.raises(SnpEdgeError, match=r"node '/blocks/blocks.0/norm1/LayerNormalization' is a LayerNormalization"):
        check_graph(graph, "trt8.2")


def test_allow_list_constant_axes():
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    axes = onnx.helper.make_tensor_value_info("axes", onnx.TensorProto.INT64, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    node = onnx.helper.make_node("Unsqueeze", ["x", "axes"], ["y"], name="dyn_unsqueeze")
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [x, axes], [y]),
                                   opset_imports=[onnx.helper.make_opsetid("", 13)])
    with pytest.raises(SnpEdgeError, match="dyn_unsqueeze.*constant"):
        check_graph(model, "trt8.2")


def test_compare_maths():
    ref = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, -1.0]], np.float32)
    out = ref + np.array([[0.0, 0.0, 0.3], [0.0, -6.0, 0.0]], np.float32)
    p = compare(out, ref, 2)
    assert p.max_abs == pytest.approx(6.0) and p.max_rel == pytest.approx(6.0 / 5.0)
    assert p.top1_agreement == 0.5


@pytest.mark.slow
def test_cli_export_json_and_errors(capsys, tmp_path, pruned_tiny):
    from snp_edge.saved import save_pruned

    folder = save_pruned(pruned_tiny, tmp_path / "p")
    out = tmp_path / "m.onnx"
    assert main(["export", str(folder), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["opset"] == 13 and report["parser"] == "trt8.2" and report["target"] is None
    assert "meaningless" in report["notice"]
    before = out.read_bytes()
    assert main(["export", str(folder), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == before
    for argv, message in (
        (["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")], "nope not found"),
        (["export", "no_such_model", "--out", str(tmp_path / "x.onnx")], "unknown model"),
        (["export", str(folder), "--out", str(tmp_path / "x.onnx"), "--opset", "11"], "invalid choice: 11"),
        (["export", str(folder), "--out", str(tmp_path / "no" / "x.onnx")], "does not exist"),
        (["export", str(folder), "--out", str(tmp_path / "x.onnx"), "--opset", "17", "--parser", "trt8.2"],
         "opset 17 cannot be parsed by trt8.2"),
        (["export", str(folder), "--out", str(tmp_path / "x.onnx"), "--opset", "17", "--target", "trt8.2"],
         "opset 17 cannot be parsed by trt8.2"),  # the spelling before 0.2
        (["export", str(folder), "--out", str(tmp_path / "x.onnx"), "--opset", "17", "--target", "jetson-nano"],
         "opset 17 cannot be parsed by trt8.2"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "p"]  # nothing half-written


def test_folder_whose_json_does_not_match_weights(capsys, tmp_path, pruned_tiny):
    from snp_edge.saved import save_pruned

    folder = save_pruned(pruned_tiny, tmp_path / "p")
    desc = json.loads((folder / "model.json").read_text())
    desc["arch"]["embed"] = 150
    (folder / "model.json").write_text(json.dumps(desc))
    assert main(["export", str(folder), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "do not match the model" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_token_major_export_equals_model(pruned_tiny):
    """The export copy (scale folded, (B*N, D) residual stream) computes the same logits as the model."""
    from snp_edge.export.prepare import export_copy

    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (export_copy(pruned_tiny.model)(x) - pruned_tiny.model(x)).abs().max().item() < 1e-5
