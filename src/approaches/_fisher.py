"""The diagonal of the empirical Fisher information, shared by EWC and IMM-mode, computed as the original's
utils.fisher_matrix_diag (src/utils.py:81-105)."""
from collections.abc import Callable

import torch
from tqdm import tqdm

SBATCH = 20  # the original's Fisher batch size (utils.py:81), whatever the training batch size


def fisher_diagonal(model: torch.nn.Module, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    x: torch.Tensor, y: torch.Tensor, sbatch: int = SBATCH) -> dict[str, torch.Tensor]:
    """Parameter name -> mean squared gradient of loss(x_batch, y_batch) over the set, as the original computes it."""
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    # train() mode, so dropout is on (utils.py:87); batches in data order, not shuffled (utils.py:89)
    model.train()
    for i in tqdm(range(0, x.size(0), sbatch), desc='Fisher diagonal', leave=False, disable=None):
        model.zero_grad()
        loss(x[i:i + sbatch], y[i:i + sbatch]).backward()
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.grad is not None:
                    # The squared gradient of a batch-mean loss, times sbatch even for a smaller last batch
                    # (utils.py:100), then divided by the number of samples (utils.py:103)
                    fisher[n] += sbatch * p.grad.pow(2)
    model.zero_grad()
    return {n: f / x.size(0) for n, f in fisher.items()}
