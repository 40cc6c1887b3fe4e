"""The input-batch check every backend shares (ONNX Runtime, TensorRT, trtexec): a small leaf module, so that the
backends need not import each other. Python 3.6; numpy is imported when a batch is checked."""

from .common.errors import UserError


def check_batch(batch, manifest):
    """``batch`` as a C-contiguous float32 array ``(N, C, H, W)``; UserError when its shape is not the bundle's."""
    import numpy as np

    batch = np.ascontiguousarray(batch, dtype=np.float32)
    want = manifest["onnx"]["input"]["shape"][1:]
    if batch.ndim != 4 or list(batch.shape[1:]) != want:
        raise UserError("input batch of shape {} does not fit the model input (N, {})".format(
            tuple(batch.shape), ", ".join(map(str, want))))
    return batch
