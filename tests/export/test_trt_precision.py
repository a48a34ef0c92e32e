"""Precision verification of TensorRT engines without TensorRT: the strongly typed network's
layer dtypes, the engine's I/O dtypes, and the engine inspector's JSON in both layouts.

Each inspector fixture is shaped like real TensorRT output; the comment above it names where
that shape comes from. Layer names follow this project's ONNX export (``/down1/conv/Conv``...).
"""

from __future__ import annotations

import json

import pytest

from p2p_deploy.errors import P2PError
from p2p_deploy.export.trt_precision import (
    NetworkLayer,
    dtype_word,
    inspector_verdict,
    io_verdict,
    is_compute_layer,
    network_verdict,
    read_inspector,
    tensor_dtype,
)

DIMS = [4, 3, 256, 256]

# TensorRT 10.x, dynamic batch, inspector read WITHOUT an execution context (defect 1 of
# issue 10): every tensor reads "N/A due to dynamic shapes" and the -1 batch stays in the
# dimensions. Shape from public engine dumps of dynamic-shape engines, e.g. a TensorRT 10
# "NoOp"/"Reformat" listing with "Dimensions": [-1, 128, 14, 14] and "Format/Datatype":
# "N/A due to dynamic shapes"; convolution layers still print "Weights": {"Type": "Half"}
# (also seen in public TensorRT 10 inspector dumps of CaskConvolution layers).
TRT10_NO_CONTEXT = {
    "Layers": [
        {
            "Name": "Reformatting CopyNode for Input Tensor 0 to /down1/conv/Conv",
            "LayerType": "Reformat",
            "Inputs": [
                {
                    "Name": "input",
                    "Dimensions": [-1, 3, 256, 256],
                    "Format/Datatype": "N/A due to dynamic shapes",
                }
            ],
            "Outputs": [
                {
                    "Name": "Reformatted Input Tensor 0 to /down1/conv/Conv",
                    "Dimensions": [-1, 3, 256, 256],
                    "Format/Datatype": "N/A due to dynamic shapes",
                }
            ],
            "Origin": "REFORMAT",
        },
        {
            "Name": "/down1/conv/Conv + /down2/act/LeakyRelu",
            "LayerType": "CaskConvolution",
            "Inputs": [
                {
                    "Name": "x16",
                    "Dimensions": [-1, 3, 256, 256],
                    "Format/Datatype": "N/A due to dynamic shapes",
                }
            ],
            "Outputs": [
                {
                    "Name": "d1",
                    "Dimensions": [-1, 64, 128, 128],
                    "Format/Datatype": "N/A due to dynamic shapes",
                }
            ],
            "Weights": {"Type": "Half", "Count": 3072},
        },
        {
            "Name": "/up8/deconv/ConvTranspose",
            "LayerType": "CaskDeconvolution",
            "Inputs": [
                {
                    "Name": "u7",
                    "Dimensions": [-1, 128, 128, 128],
                    "Format/Datatype": "N/A due to dynamic shapes",
                }
            ],
            "Outputs": [
                {
                    "Name": "u8",
                    "Dimensions": [-1, 3, 256, 256],
                    "Format/Datatype": "N/A due to dynamic shapes",
                }
            ],
        },
    ],
    "Bindings": ["input", "output"],
}

# TensorRT 10.x, context attached (input shape = profile opt): "Format/Datatype" texts as in
# public TensorRT 10 dumps ("Row major linear FP16 format", "Channel major FP16 format where
# channel % 4 == 0" on a Reformat layer at the network input; the TensorRT docs' "Engine
# Inspector" example prints the same combined field). The fp32 I/O shows up only on the
# Reformat/Cast layers TensorRT inserts next to it, and on the last deconvolution, into which
# TensorRT fused the graph's final Cast to float32 (fp16 in and weights, fp32 out).
TRT10_FP16 = {
    "Layers": [
        {
            "Name": "Reformatting CopyNode for Input Tensor 0 to /down1/conv/Conv",
            "LayerType": "Reformat",
            "Inputs": [
                {
                    "Name": "input",
                    "Dimensions": DIMS,
                    "Format/Datatype": "Row major linear FP32 format",
                }
            ],
            "Outputs": [
                {
                    "Name": "r0",
                    "Dimensions": DIMS,
                    "Format/Datatype": "Channel major FP16 format where channel % 4 == 0",
                }
            ],
            "Origin": "REFORMAT",
        },
        {
            "Name": "/down1/conv/Conv",
            "LayerType": "CaskConvolution",
            "Inputs": [
                {
                    "Name": "r0",
                    "Dimensions": DIMS,
                    "Format/Datatype": "Channel major FP16 format where channel % 4 == 0",
                }
            ],
            "Outputs": [
                {
                    "Name": "d1",
                    "Dimensions": [4, 64, 128, 128],
                    "Format/Datatype": "Channel major FP16 format where channel % 8 == 0",
                }
            ],
            "Weights": {"Type": "Half", "Count": 3072},
        },
        {
            "Name": "/down2/norm/InstanceNormalization",
            "LayerType": "PluginV3",
            "Inputs": [
                {
                    "Name": "d1",
                    "Dimensions": [4, 64, 128, 128],
                    "Format/Datatype": "Row major linear FP16 format",
                }
            ],
            "Outputs": [
                {
                    "Name": "n2",
                    "Dimensions": [4, 128, 64, 64],
                    "Format/Datatype": "Row major linear FP16 format",
                }
            ],
        },
        {
            "Name": "/up8/deconv/ConvTranspose + /Tanh + /Cast_1",
            "LayerType": "CaskDeconvolution",
            "Inputs": [
                {
                    "Name": "u7",
                    "Dimensions": [4, 128, 128, 128],
                    "Format/Datatype": "Channel major FP16 format where channel % 8 == 0",
                }
            ],
            "Outputs": [
                {
                    "Name": "output",
                    "Dimensions": DIMS,
                    "Format/Datatype": "Row major linear FP32 format",
                }
            ],
            "Weights": {"Type": "Half", "Count": 6144},
        },
    ],
    "Bindings": ["input", "output"],
}


def _fp32_conv(fmt_key: str, value: str) -> dict:
    return {
        "Name": "/down3/conv/Conv",
        "LayerType": "CaskConvolution",
        "Inputs": [{"Name": "n2", "Dimensions": [4, 128, 64, 64], fmt_key: value}],
        "Outputs": [{"Name": "d3", "Dimensions": [4, 256, 32, 32], fmt_key: value}],
    }


# TensorRT 11.x: the dtype has its own key. Layer tensors carry separate "Datatype" and
# "Format" keys (read so by Polygraphy 0.53, tools/inspect/subtool/model/extractors/_trt.py:
# "TensorRT 11 split the combined 'Format/Datatype' field into separate 'Datatype' and
# 'Format' keys"); the engine's I/O moved from "Bindings" to "I/O Tensors" objects with
# "DataType" (NVIDIA, "Migrating IEngineInspector Usage from TensorRT 10.x to 11.x").
TRT11_FP16 = {
    "Layers": [
        {
            "Name": "/input/Cast",
            "LayerType": "Cast",
            "Inputs": [
                {
                    "Name": "input",
                    "Dimensions": DIMS,
                    "Datatype": "Float",
                    "Format": "Row major linear FP32 format (kLINEAR)",
                }
            ],
            "Outputs": [
                {
                    "Name": "x16",
                    "Dimensions": DIMS,
                    "Datatype": "Half",
                    "Format": "Row major linear FP16 format (kLINEAR)",
                }
            ],
        },
        {
            "Name": "/down1/conv/Conv",
            "LayerType": "Convolution",
            "Inputs": [
                {
                    "Name": "x16",
                    "Dimensions": DIMS,
                    "Datatype": "Half",
                    "Format": "Channel major FP16 format (kHWC8)",
                }
            ],
            "Outputs": [
                {
                    "Name": "d1",
                    "Dimensions": [4, 64, 128, 128],
                    "Datatype": "Half",
                    "Format": "Channel major FP16 format (kHWC8)",
                }
            ],
        },
    ],
    "I/O Tensors": [
        {"Name": "input", "IOMode": "Input", "DataType": "Float", "Dimensions": [-1, 3, 256, 256]},
        {
            "Name": "output",
            "IOMode": "Output",
            "DataType": "Float",
            "Dimensions": [-1, 3, 256, 256],
        },
    ],
}


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("DataType.HALF", "fp16"),
        ("Half", "fp16"),
        ("Row major linear FP16 format", "fp16"),
        ("Channel major FP16 format where channel % 4 == 0", "fp16"),
        ("DataType.FLOAT", "fp32"),
        ("Float", "fp32"),
        ("Row major linear FP32 format (kLINEAR)", "fp32"),
        ("Thirty-two wide channel vectorized row major Int8 format.", "int8"),
        ("DataType.BF16", "bf16"),
        ("Int32", "int32"),
        ("N/A due to dynamic shapes", "n/a"),
        ("something", "unknown"),
    ],
)
def test_dtype_word(text: str, word: str) -> None:
    assert dtype_word(text) == word


def test_tensor_dtype_reads_both_layouts() -> None:
    assert tensor_dtype({"Format/Datatype": "Row major linear FP16 format"}) == "fp16"
    assert tensor_dtype({"Datatype": "Half", "Format": "Row major linear FP32 format"}) == "fp16"
    assert tensor_dtype({"DataType": "Float"}) == "fp32"
    # the invented "DataType" inside a 10.x layout is not needed, "Format" alone says nothing
    assert tensor_dtype({"Format": "kLINEAR"}) == "unknown" == tensor_dtype("conv1")


def test_compute_layers() -> None:
    assert is_compute_layer("CaskConvolution") and is_compute_layer("CaskDeconvolution")
    assert is_compute_layer("LayerType.CONVOLUTION") and is_compute_layer("gemm")
    assert is_compute_layer("MatrixMultiply")
    assert not is_compute_layer("Reformat") and not is_compute_layer("Cast")
    assert not is_compute_layer("PluginV3") and not is_compute_layer("Shuffle")


def test_no_context_reads_na_and_is_not_refused() -> None:
    rec = read_inspector(json.dumps(TRT10_NO_CONTEXT), "fp16")
    assert rec.layout == "10.x Format/Datatype" and rec.layers == 3
    # the convolution's weights still say Half; the deconvolution shows nothing
    assert rec.compute == {"fp16": 1, "n/a": 1} and rec.tensors == {"n/a": 3}
    assert rec.contrary == []
    inspector_verdict(rec, "fp16", "model_fp16.plan")  # no evidence against: not refused


def test_fp16_engine_with_reformat_and_fused_casts_at_fp32_io_passes() -> None:
    rec = read_inspector(TRT10_FP16, "fp16")
    assert rec.compute == {"fp16": 2} and rec.contrary == []
    assert rec.tensors["fp32"] == 1 and rec.layer_types["Reformat"] == 1
    inspector_verdict(rec, "fp16", "model_fp16.plan")
    # the same engine is refused as fp32: its convolutions show fp16 weights
    with pytest.raises(P2PError, match=r"2 convolution layers in fp16, not fp32"):
        inspector_verdict(read_inspector(TRT10_FP16, "fp32"), "fp32", "model_fp32.plan")


def test_fp32_compute_layer_is_refused_in_both_layouts() -> None:
    for key, value in [("Format/Datatype", "Row major linear FP32 format"), ("Datatype", "Float")]:
        info = {"Layers": [*TRT10_FP16["Layers"], _fp32_conv(key, value)]}
        rec = read_inspector(info, "fp16")
        assert rec.contrary == ["/down3/conv/Conv"]
        with pytest.raises(P2PError, match=r"model_fp16\.plan: .*1 convolution layers in fp32"):
            inspector_verdict(rec, "fp16", "model_fp16.plan")


def test_trt11_layout() -> None:
    rec = read_inspector(TRT11_FP16, "fp16")
    assert rec.layout == "11.x Datatype+Format"
    assert rec.compute == {"fp16": 1} and rec.layer_types == {"Cast": 1, "Convolution": 1}
    inspector_verdict(rec, "fp16", "m.plan")
    assert rec.to_dict()["compute_layers"] == {"fp16": 1}


def test_names_only_and_garbage_are_records_not_refusals() -> None:
    names = read_inspector({"Layers": ["/down1/conv/Conv", "/down2/conv/Conv"]}, "fp16")
    assert names.layout == "names only" and names.layers == 2
    inspector_verdict(names, "fp16", "m.plan")
    assert read_inspector("{not json", "fp16").layout == "unreadable"
    assert read_inspector({}, "fp16").layout == "empty"


# INetworkDefinition layers of this project's fp16 export as str(layer.type) and
# str(tensor.dtype) print them in the TensorRT Python API (LayerType.*, DataType.*).
NET_FP16 = [
    NetworkLayer("/input/Cast", "LayerType.CAST", ("DataType.HALF",)),
    NetworkLayer("/down1/conv/Conv", "LayerType.CONVOLUTION", ("DataType.HALF",)),
    NetworkLayer(
        "/down2/norm/InstanceNormalization", "LayerType.NORMALIZATION", ("DataType.HALF",)
    ),
    NetworkLayer("/up8/deconv/ConvTranspose", "LayerType.DECONVOLUTION", ("DataType.HALF",)),
    NetworkLayer("/output/Cast", "LayerType.CAST", ("DataType.FLOAT",)),
]


def test_network_verdict() -> None:
    rec = network_verdict(NET_FP16, "fp16", "model_fp16.onnx")
    assert rec == {"compute_layers": {"fp16": 2}, "layers": 5}
    with pytest.raises(P2PError, match=r"computes 2 convolution layers in fp16, not fp32"):
        network_verdict(NET_FP16, "fp32", "model.onnx")
    mixed = [
        *NET_FP16,
        NetworkLayer("/down3/conv/Conv", "LayerType.CONVOLUTION", ("DataType.FLOAT",)),
    ]
    with pytest.raises(P2PError, match=r"1 convolution layers in fp32, not fp16 .*down3"):
        network_verdict(mixed, "fp16", "model_fp16.onnx")
    with pytest.raises(P2PError, match="no convolution layers"):
        network_verdict(NET_FP16[:1], "fp16", "model_fp16.onnx")


def test_io_verdict() -> None:
    io = {"input": "DataType.FLOAT", "output": "DataType.FLOAT"}
    assert io_verdict(io, "float32", "m.plan") == {"input": "fp32", "output": "fp32"}
    with pytest.raises(P2PError, match=r"m\.plan: engine I/O .*'output': 'fp16'.* float32"):
        io_verdict({**io, "output": "DataType.HALF"}, "float32", "m.plan")


def test_trt11_format_only_entry_still_names_the_dtype() -> None:
    # TensorRT 11 layer tensors split "Format/Datatype" into "Datatype" and "Format"; Polygraphy
    # 0.53 (extractors/_trt.py) joins whichever of the two is present, so an entry carrying
    # only "Format" ("Row major linear FP32 format (kLINEAR)", the wording of NVIDIA's 10.x ->
    # 11.x IEngineInspector migration page) still names its dtype.
    assert tensor_dtype({"Format": "Row major linear FP32 format (kLINEAR)"}) == "fp32"
    conv = _fp32_conv("Format", "Channel major FP16 format (kHWC8)")
    rec = read_inspector({"Layers": [conv]}, "fp16")
    assert rec.layout == "11.x Datatype+Format" and rec.compute == {"fp16": 1}
    assert rec.contrary == []
