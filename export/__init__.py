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

Importing this package (or :mod:`export.flavors`) imports nothing heavy: the command line reads the flavour
table while building ``--help``. ``export_onnx`` is ``snp_edge.export.onnx_export.export_onnx``.
"""

