"""The standard CIFAR ResNet-18 (3x3 stem, no max-pooling, base width 64, the whole last map averaged), as used for
HAT by Kim et al. 2022 and HAT-CL: networks/_resnet.py, where each fact's source is, with one batch norm per layer
and one linear head per task (11,173,962 parameters with one 10-class head at 32x32)."""
from networks._resnet import PlainResNet18

VARIANT = None  # the approaches it serves: their Appr.network_variant


class Net(PlainResNet18):
    """ResNet-18, base width 64."""

    nf = 64
    pool = None
    head_bias = True  # kuangliu's
