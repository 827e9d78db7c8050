"""The AlexNet-like network of alexnet.py as the original's alexnet_lfl: no dropout on the last hidden layer (fc2),
whose activations forward() also returns, for LFL's penalty on them."""
from networks import alexnet
from networks._common import LFLForm

VARIANT = 'lfl'  # the approaches it serves: their Appr.network_variant


class Net(LFLForm, alexnet.Net):
    """AlexNet-like network with one linear head per task; forward returns the logits and the last hidden layer."""
