"""The original code's own MLP (its src/networks/mlp.py), which its non-HAT approaches ran on mnist2 and pmnist: 3
hidden layers of 800 ReLU units, dropout 0.5 after each, none on the input. The paper describes the 2x2000 MLP of
mlp.py, the default here; this one gives the original's numbers exactly (`--network mlp_original`)."""
from collections.abc import Sequence

from networks import mlp

VARIANT = None  # the approaches it serves: their Appr.network_variant


class Net(mlp.Net):
    """mlp.py's network at the original's sizes (its dropout of p = 0 on the input draws nothing)."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__(inputsize, taskcla, nlayers=3, nhid=800, pdrop1=0.0, pdrop2=0.5)
