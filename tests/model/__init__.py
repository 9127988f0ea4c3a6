"""Tests of less.model: the Zipformer CTC/AED model, its optimizer and ONNX export."""
