"""The MLP of mlp.py in the form of the original's alexnet_lfl (the original has no MLP for LFL): no dropout on the
last hidden layer, whose activations forward() also returns, for LFL's penalty on them."""
from networks import mlp
from networks._common import LFLForm

VARIANT = 'lfl'  # the approaches it serves: their Appr.network_variant


class Net(LFLForm, mlp.Net):
    """MLP with one linear head per task; forward returns the logits and the last hidden layer."""
