"""``SmallCNN``: a network small enough to train from scratch on a CPU in seconds.

The demo (``imbal-estimators demo``) and the examples' quick modes use it, so
that they finish in minutes on 2 CPU cores without downloading weights. Pass it
as ``ImageImbalanceClassifier(module=SmallCNN)``; real photos deserve a
pretrained torchvision backbone instead.
"""

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Three convolution blocks (16, 32, 64 channels), global average pooling, a linear head.

    About 24 thousand weights; for small images (16 to 64 px).

    Parameters
    ----------
    num_classes : int, default=2
        The estimator passes ``len(classes_)``.
    width : int, default=16
        Channels of the first block (doubled in each of the next two).
    """

    #: random weights: ``compare`` does not screen on its frozen features
    pretrained = False

    def __init__(self, num_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        layers, channels = [], 3
        for i, out in enumerate((width, 2 * width, 4 * width)):
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))
