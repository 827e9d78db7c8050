"""The reduced ResNet-18 of resnet18_reduced.py in SupSup's form (networks/_supsup.py): the authors' GEMResNet18
(github.com/RAIVNLab/supsup, models/gemresnet.py:48-80: base width 20, the same blocks and 1x1 shortcuts), every
convolution a signed constant masked per task, one batch norm per task with running statistics, and their
avg_pool2d(out, 4) before the heads (gemresnet.py:74: 160 features at 32x32) instead of GPM's 2x2 pooling."""
from networks import resnet18_reduced
from networks._supsup import SupsupForm

VARIANT = 'supsup'  # the approaches it serves: their Appr.network_variant


class Net(SupsupForm, resnet18_reduced.Net):
    """Reduced ResNet-18, base width 20, its convolutions masked per task."""

    pool = 4
