"""WSN's MLP (github.com/ihaeyong/WSN, networks/mlp.py:14-32, its PMNIST network) in subnet form (networks/_subnet.py):
mlp.py's network at the authors' sizes, 2 hidden layers of 100 ReLU units, no dropout, no biases, one head per task."""
from networks import mlp
from networks._subnet import SubnetForm

VARIANT = 'subnet'  # the approaches it serves: their Appr.network_variant


class Net(SubnetForm, mlp.Net):
    """mlp.py's network, 2 x 100 units (n_hidden=100, mlp.py:15), its layers score-masked."""

    plain_kwargs = {'nlayers': 2, 'nhid': 100, 'pdrop1': 0.0, 'pdrop2': 0.0}
