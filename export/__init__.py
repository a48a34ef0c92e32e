"""Exporter: a trained generator -> ONNX (fp32, fp16, int8) -> TensorRT plans, checked.

Modules:
    command         ``run_export``: the function behind ``p2p export``
    exporter        ``Exporter``: one method per format behind one wrapper (timing, moving
                    staged models in, the TensorRT skip policy)
    onnx_export     torch -> ONNX with names ``input``/``output`` and a dynamic batch axis
    fp16            the half-precision wrapper and the ONNX graph precision check
    parity          ONNX Runtime (CPU) against eager torch in the same test-norm mode
    int8_export     the INT8 step's pieces: calibration set, quantize, gate, card
    int8            the QDQ quantizer, the INT8 graph check and the quality gate
    calibration     calibration and held-out images (a folder, or the checkpoint's data)
    tensorrt_build  ONNX -> ``.plan`` for TensorRT 10.x and 11.x, precision verified
    trt_precision   precision evidence of an fp16/fp32 engine; int8_engine: of an int8 one
    trt_parity      an engine against ONNX Runtime fp32 on the parity inputs
    triton          a Triton Inference Server model repository for an export

Importing this package is cheap; torch/onnx are imported by the submodules that need them.
"""
