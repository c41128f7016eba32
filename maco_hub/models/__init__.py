"""Models: Hugging Face checkpoints and plain modules loaded for visualization, their pixel
convention, class names and hookable layers, and the offline EfficientNet-Lite demo model."""
