"""FP32 pinning selection on the node names the real exporter writes, and the build-mode decision per
TensorRT version. (The builder itself runs in test_trt_engine.py where TensorRT and a GPU exist.)"""

import io

import pytest
from snp_edge.engines.build import build_mode, select_fp32_layers
from snp_edge.engines.common.errors import EnginesError
from snp_edge.engines.trt_compat import api_for_version

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy (opset 13) exporter

# The TensorRT layer type the ONNX parser creates for each op in the exported graph.
TRT_LAYER_TYPE = {"ReduceMean": "REDUCE", "Sub": "ELEMENTWISE", "Pow": "ELEMENTWISE", "Add": "ELEMENTWISE",
                  "Div": "ELEMENTWISE", "Mul": "ELEMENTWISE", "Sqrt": "UNARY", "Erf": "UNARY",
                  "Softmax": "SOFTMAX", "MatMul": "MATRIX_MULTIPLY", "Gemm": "MATRIX_MULTIPLY",
                  "Constant": "CONSTANT", "Transpose": "SHUFFLE", "Reshape": "SHUFFLE", "Split": "SLICE",
                  "Slice": "SLICE", "Shape": "SHAPE", "Gather": "GATHER", "Concat": "CONCATENATION",
                  "Unsqueeze": "SHUFFLE", "Squeeze": "SHUFFLE"}


@pytest.fixture(scope="module")
def exported_model():
    """A two-block ViT-style model exported by torch.onnx at opset 13 (LayerNorm
    decomposed), the way export/ writes models for TensorRT 8.2."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, dim=16):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, x):
            q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
            x = x + (q @ k.transpose(-2, -1) * 0.25).softmax(dim=-1) @ v
            return x + self.mlp(self.norm2(x))

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([Block(), Block()])
            self.norm = nn.LayerNorm(16)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.norm(x)

    buf = io.BytesIO()
    torch.onnx.export(Tiny().eval(), torch.randn(1, 5, 16), buf, opset_version=13, dynamo=False,
                      input_names=["input"], output_names=["logits"])
    return onnx.load_from_string(buf.getvalue())


@pytest.fixture(scope="module")
def exported_nodes(exported_model):
    return [(n.name, n.op_type) for n in exported_model.graph.node]


def _table(nodes):
    return [(name, TRT_LAYER_TYPE.get(op, "OTHER"), op not in ("Shape", "Constant")) for name, op in nodes]


@pytest.fixture(scope="module")
def pin_lists(exported_model):
    """The manifest's onnx.fp32_nodes for the exported graph: export/cleanup.py's one LayerNorm matcher."""
    gs = pytest.importorskip("onnx_graphsurgeon")
    from snp_edge.export.cleanup import fp32_nodes

    return fp32_nodes(gs.import_onnx(exported_model))


def test_fp32_norms_pins_every_layernorm_node_and_nothing_else(exported_nodes, pin_lists):
    table = _table(exported_nodes)
    chosen = {table[i][0] for i in select_fp32_layers(table, pin_lists["norms"])}
    expected = {name for name, op in exported_nodes if "norm" in name and op != "Constant"}
    assert chosen == expected
    assert len({name.rsplit("/", 1)[0] for name in chosen}) == 5  # norm1, norm2 x 2 blocks + final norm
    assert {op for name, op in exported_nodes if name in chosen} >= {"ReduceMean", "Sub", "Sqrt", "Div"}


def test_fp32_softmax(exported_nodes, pin_lists):
    table = _table(exported_nodes)
    chosen = [table[i][0] for i in select_fp32_layers(table, pin_lists["softmax"])]
    assert len(chosen) == 2 and all(name.endswith("Softmax") for name in chosen)
    assert select_fp32_layers(table, []) == []


def test_extra_layers_of_one_node_are_pinned_too():
    """TensorRT's parser names the further layers of one node ``<node>_<n>``; other names never match."""
    table = [("/norm/Pow", "ELEMENTWISE", True), ("/norm/Pow_1", "ELEMENTWISE", True),
             ("/norm/Power", "ELEMENTWISE", True), ("/norm/Pow_x", "ELEMENTWISE", True)]
    assert select_fp32_layers(table, ["/norm/Pow"]) == [0, 1]


def test_manifest_without_node_lists_is_refused_for_pinning():
    from snp_edge.engines.build import fp32_node_names

    manifest = {"onnx": {"fp16_safe": False}}
    assert fp32_node_names(manifest) == []
    with pytest.raises(EnginesError, match="onnx.fp32_nodes"):
        fp32_node_names(manifest, fp32_norms=True)
    manifest["onnx"]["fp32_nodes"] = {"norms": ["a"], "softmax": ["b"]}
    assert fp32_node_names(manifest, True, True) == ["a", "b"]
    assert fp32_node_names(manifest, fp32_softmax=True) == ["b"]


def test_non_float_layers_are_never_pinned():
    table = [("/norm/Shape", "SHAPE", False), ("/norm/Sub_1", "ELEMENTWISE", False),
             ("/norm/Sub", "ELEMENTWISE", True), ("/norm/LayerNormalization", "NORMALIZATION", True)]
    names = ["/norm/Shape", "/norm/Sub", "/norm/LayerNormalization"]
    assert select_fp32_layers(table, names) == [2, 3]


@pytest.mark.parametrize("version,precision,dtype,expected", [
    ("8.2.1", "fp16", "float32", "fp16-flag"),
    ("8.2.1", "fp16", "float16", "fp16-flag"),
    ("10.8", "fp16", "float32", "fp16-flag"),
    ("10.8", "fp16", "float16", "strongly-typed"),
    ("11.0", "fp16", "float16", "strongly-typed"),
    ("11.0", "fp32", "float32", "fp32"),
    ("8.2.1", "fp32", "float32", "fp32"),
])
def test_build_mode(version, precision, dtype, expected):
    assert build_mode(api_for_version(version), precision, dtype) == expected


@pytest.mark.parametrize("version,precision,dtype,kwargs,message", [
    ("11.0", "fp16", "float32", {}, "TensorRT 11.0 has no FP16 builder flag"),
    ("10.8", "fp32", "float16", {}, "builds only with --precision fp16"),
    ("10.8", "fp16", "float16", {"fp32_norms": True}, "do not apply to a strongly-typed build"),
])
def test_build_mode_refusals(version, precision, dtype, kwargs, message):
    with pytest.raises(EnginesError, match=message):
        build_mode(api_for_version(version), precision, dtype, **kwargs)
