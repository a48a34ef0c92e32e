"""Inference runners: one interface over PyTorch, ONNX Runtime and TensorRT."""
