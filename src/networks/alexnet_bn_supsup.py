"""GPM's AlexNet of alexnet_bn.py, the split CIFAR-100 network of this repository's successors, in SupSup's form
(networks/_supsup.py): its five layers signed constants masked per task, one batch norm per task with running
statistics. The authors ran split CIFAR-100 on GEM's reduced ResNet-18 (resnet18_reduced_supsup)."""
from networks import alexnet_bn
from networks._supsup import SupsupForm

VARIANT = 'supsup'  # the approaches it serves: their Appr.network_variant


class Net(SupsupForm, alexnet_bn.Net):
    """alexnet_bn's network, its five layers masked per task."""
