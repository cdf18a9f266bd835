"""Exporters: PyTorch -> ONNX (template and search graphs with metadata), int8 quantisation."""
