"""The two helpers moved to break the device code's import cycles: ``engines.batches.check_batch`` (shared by the
ONNX Runtime, TensorRT and trtexec backends) and ``engines.verify.fp32_distance`` (INT8 bundles)."""

import numpy as np
import pytest
from snp_edge.engines.batches import check_batch
from snp_edge.engines.common.errors import EnginesError, UserError
from snp_edge.engines.verify import fp32_distance

MANIFEST = {"onnx": {"input": {"shape": ["N", 3, 4, 4]}}}


def test_check_batch_gives_contiguous_float32_and_refuses_other_shapes():
    batch = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)[:, :, :, ::-1]
    out = check_batch(batch, MANIFEST)
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"] and np.array_equal(out, batch.astype(np.float32))
    with pytest.raises(UserError, match=r"input batch of shape \(2, 3, 4, 5\) does not fit the model input \(N, 3, 4, 4\)"):
        check_batch(np.zeros((2, 3, 4, 5)), MANIFEST)


def test_fp32_distance_for_int8_bundles_only(tmp_path):
    fp32 = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]], dtype=np.float32)
    (tmp_path / "golden").mkdir()
    np.save(tmp_path / "golden" / "fp32.npy", fp32)
    int8 = {"quantization": {"precision": "int8", "fp32_outputs": "golden/fp32.npy"}}
    logits = fp32 + np.array([[0.5, 0.0, 0.0], [0.0, 0.0, -0.25]], dtype=np.float32)
    got = fp32_distance(str(tmp_path), int8, logits)
    assert sorted(got) == ["logit_scale", "max_abs_err", "mean_abs_err", "top1_agreement"]
    assert got["max_abs_err"] == pytest.approx(0.5) and got["mean_abs_err"] == pytest.approx(0.75 / 6)
    assert got["top1_agreement"] == 1.0
    assert fp32_distance(str(tmp_path), {"quantization": None}, logits) is None
    with pytest.raises(EnginesError, match="cannot read the FP32 golden outputs golden/missing.npy"):
        fp32_distance(str(tmp_path), {"quantization": {"precision": "int8", "fp32_outputs": "golden/missing.npy"}},
                      logits)
