"""Which GPU this is: what a TensorRT engine is tied to (name and compute capability).

Shared by the exporter (written into an engine's card) and the TensorRT runner (compared with
the card). Imports nothing heavy at module level: a torch-free box asks pycuda or cuda-python.
"""

from __future__ import annotations


def gpu_identity(index: int = 0) -> tuple[str | None, str | None]:
    """(GPU name, compute capability ``"8.6"``) of CUDA device ``index`` from torch.cuda, else
    pycuda, else cuda-python; (None, None) when none can tell."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(index)
            return torch.cuda.get_device_name(index), f"{major}.{minor}"
    except Exception:  # noqa: BLE001 - a broken CUDA setup is "unknown", not fatal
        pass
    try:
        import pycuda.driver as drv

        drv.init()
        dev = drv.Device(index)
        major, minor = dev.compute_capability()
        return dev.name(), f"{major}.{minor}"
    except Exception:  # noqa: BLE001
        pass
    try:
        from cuda.bindings import driver as cu

        cu.cuInit(0)
        _, dev = cu.cuDeviceGet(index)
        _, name = cu.cuDeviceGetName(64, dev)
        attr = cu.CUdevice_attribute
        _, major = cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
        _, minor = cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
        return name.split(b"\0", 1)[0].decode(), f"{major}.{minor}"
    except Exception:  # noqa: BLE001
        return None, None
