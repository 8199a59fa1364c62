"""moesearch embedder: MoE BERT (torch side), ONNX export, and the torch-free runtime (`embedder.runtime`)."""
