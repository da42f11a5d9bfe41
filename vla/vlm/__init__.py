"""The VLM a VLA wraps, pretrained here: location tokens, image-text sources, the model, its training and evaluation."""
