"""The reduced ResNet-18 of GEM and GPM (base width 20, GPM's 2x2 average pooling before the heads), with one batch
norm per layer and one linear head per task: networks/_resnet.py, where each fact's source is."""
from networks._resnet import PlainResNet18

VARIANT = None  # the approaches it serves: their Appr.network_variant


class Net(PlainResNet18):
    """Reduced ResNet-18, base width 20."""

    nf = 20
    pool = 2
    head_bias = False  # GPM's
