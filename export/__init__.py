"""Export stage: ONNX that TensorRT 8.2 (Jetson Nano) and TensorRT 10 parse, parity-checked, and device bundles.

- :mod:`export.prepare`  an export copy of a model (timm attention -> explicit MatMul/Softmax/MatMul,
                         softmax scale folded into the query weights, static token count)
- :mod:`export.onnx_export` torch.onnx export + clean-up + checks, written atomically
- :mod:`export.cleanup`  onnx-graphsurgeon passes (fold constants, name weights, FP32-pin metadata)
- :mod:`export.trt_ops`  which ONNX ops and opsets each TensorRT target parses
- :mod:`export.parity`   ONNX Runtime against PyTorch
- :mod:`export.bundle`   the self-contained device bundle
"""

from .onnx_export import ExportResult, export_onnx

__all__ = ["ExportResult", "export_onnx"]
