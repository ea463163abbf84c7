"""What a trained model costs to deploy: size, GFLOPs, latency and LiteRT/ONNX exports."""
