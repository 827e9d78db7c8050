"""The ResNet-18 of resnet18.py with HAT's task gates on every convolution and one batch norm per task and layer
(networks/_resnet.py)."""
from networks._resnet import HatResNet18

VARIANT = 'hat'  # the approaches it serves: their Appr.network_variant


class Net(HatResNet18):
    """ResNet-18, base width 64, with HAT's gates."""

    nf = 64
    pool = None
    head_bias = True  # kuangliu's
