"""Networks: the backbone registry (torchvision's models and ``"small_cnn"``), the image
model wrapper with its head, ``SmallCNN`` and frozen-backbone features."""
