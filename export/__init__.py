"""Exporter: a trained generator -> ONNX (fp32, fp16) -> TensorRT plans, parity-checked.

Modules:
    onnx_export     torch -> ONNX with names ``input``/``output`` and a dynamic batch axis
    fp16            the half-precision wrapper and the ONNX graph precision check
    parity          ONNX Runtime (CPU) against eager torch in the same test-norm mode
    tensorrt_build  ONNX -> ``.plan`` for TensorRT 10.x and 11.x, precision verified
    triton          a Triton Inference Server model repository for an export
    command         ``run_export``: the pipeline behind ``p2p export``

Importing this package is cheap; torch/onnx are imported by the submodules that need them.
"""
