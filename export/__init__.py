"""Export stage: ONNX that TensorRT 8.2 (Jetson Nano) and TensorRT 10 parse, parity-checked, and device bundles.

- :mod:`export.prepare`  an export copy of a model (timm attention -> explicit MatMul/Softmax/MatMul,
                         softmax scale folded into the query weights, static token count)
- :mod:`export.normalize` the input normalisation folded into the patch embedding (pixels in, no extra node)
- :mod:`export.onnx_export` torch.onnx export + clean-up + checks, written atomically
- :mod:`export.cleanup`  onnx-graphsurgeon passes (fold constants, name weights, FP32-pin metadata)
- :mod:`export.trt_ops`  which ONNX ops and opsets each TensorRT target parses
- :mod:`export.parity`   ONNX Runtime against PyTorch
- :mod:`export.bundle`   the self-contained device bundle (:mod:`export.readme` its README,
                         :mod:`export.polygraphy_data` its golden data in Polygraphy's formats)
- :mod:`export.flavors`  the runtimes a bundle can also carry files for (jetson-inference, DeepStream, Triton),
                         one entry each, written by :mod:`export.jetson_inference`, :mod:`export.deepstream`,
                         :mod:`export.triton`

Importing this package (or :mod:`export.flavors`) imports nothing heavy; ``export_onnx`` loads on first use.
"""

_LAZY = {"ExportResult": "onnx_export", "export_onnx": "onnx_export"}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
