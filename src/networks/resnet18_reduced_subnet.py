"""The reduced ResNet-18 of resnet18_reduced.py, which is WSN's 5-Datasets network (github.com/ihaeyong/WSN,
networks/resnet18.py:129-245, SubnetResNet18(nf=20): the same blocks, shortcut and 2x2 average pooling), in subnet
form (networks/_subnet.py): every convolution score-masked, its batch norms without scale, shift or running
statistics, as WSN's (resnet18.py:137-176)."""
from networks import resnet18_reduced
from networks._subnet import SubnetForm

VARIANT = 'subnet'  # the approaches it serves: their Appr.network_variant


class Net(SubnetForm, resnet18_reduced.Net):
    """Reduced ResNet-18, base width 20, its convolutions score-masked."""
