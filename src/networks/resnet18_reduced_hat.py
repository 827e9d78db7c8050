"""The reduced ResNet-18 of resnet18_reduced.py with HAT's task gates on every convolution and one batch norm per
task and layer (networks/_resnet.py)."""
from networks._resnet import HatResNet18

VARIANT = 'hat'  # the approaches it serves: their Appr.network_variant


class Net(HatResNet18):
    """Reduced ResNet-18, base width 20, with HAT's gates."""

    nf = 20
    pool = 2
    head_bias = False  # GPM's
