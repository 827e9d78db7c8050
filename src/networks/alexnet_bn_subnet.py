"""GPM's AlexNet of alexnet_bn.py, which is WSN's split CIFAR-100 network (github.com/ihaeyong/WSN, networks/alexnet.py:
721-807: the same layers and dropout), in subnet form (networks/_subnet.py): its batch norms without scale, shift or
running statistics, as WSN's (alexnet.py:733-769)."""
from networks import alexnet_bn
from networks._subnet import SubnetForm

VARIANT = 'subnet'  # the approaches it serves: their Appr.network_variant


class Net(SubnetForm, alexnet_bn.Net):
    """alexnet_bn's network, its five layers score-masked."""
