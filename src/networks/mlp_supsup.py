"""The MLP of mlp.py in SupSup's form (networks/_supsup.py): 2 hidden layers of 300 ReLU units, as the authors' GG
demonstration on PermutedMNIST (github.com/RAIVNLab/supsup, mnist.ipynb:181-195: 784-300-300, then a masked 100-way
output), no dropout, no biases, one head per task."""
from networks import mlp
from networks._supsup import SupsupForm

VARIANT = 'supsup'  # the approaches it serves: their Appr.network_variant


class Net(SupsupForm, mlp.Net):
    """mlp.py's network, 2 x 300 units, its layers signed constants masked per task."""

    plain_kwargs = {'nlayers': 2, 'nhid': 300, 'pdrop1': 0.0, 'pdrop2': 0.0}
