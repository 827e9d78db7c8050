"""Split CIFAR-100: 10 tasks of 10 classes (`--ntasks 20`: 20 tasks of 5), the benchmark of GPM (Saha, Garg & Roy,
Gradient Projection Memory for Continual Learning, ICLR 2021; code github.com/sahagobinda/GPM).

Taken from GPM's dataloader/cifar100.py and main_cifar100.py (read at commit 1a238ec):
- task k holds the labels k*n .. k*n+n-1 (n = 100 / ntasks), relabelled 0..n-1 (its `nn = n // 10`, `n % 10`), in
  the files' order;
- the tasks stay in label order (its `ids = list(np.arange(10))`, the seed's shuffle commented out), so here too by
  default; `--seed-order` shuffles them by the seed as the other experiments do;
- its mean and std are HAT's, those of cifar.py ((125.3, 123.0, 113.9) / 255 and (63.0, 62.1, 66.7) / 255);
- the validation set is the first 5% of each task's training set shuffled by the seed (main_cifar100.py's
  --pc_valid 0.05 passed to get(), which holds out as HAT's code does).
GPM has only the 10-task split; the 20-task one follows the same rule with 5 classes a task.
"""
from pathlib import Path

from dataloaders import cifar
from dataloaders._common import normalised_source, split_classes, task_order, taskcla_of
from plumbing.utils import UserError

INPUTSIZE = [3, 32, 32]
DEFAULT_NETWORK = 'alexnet_bn'  # GPM's 5-layer AlexNet with batch normalisation
PC_VALID = 0.05
MEAN, STD = cifar.MEAN, cifar.STD
NCLASSES = 100
NTASKS = (10, 20)


def add_arguments(parser) -> None:
    """The experiment's own flags."""
    parser.add_argument('--ntasks', type=int, choices=NTASKS, default=NTASKS[0],
                        help='tasks of 100 / ntasks classes each (default: 10, GPM\'s)')
    parser.add_argument('--seed-order', action='store_true',
                        help="order the tasks by the seed, as the other experiments (default: GPM's label order)")


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None,
        ntasks: int = NTASKS[0], seed_order: bool = False):
    """CIFAR-100's tasks of consecutive classes, in label order (or the seed's), each with a seeded validation split."""
    if ntasks not in NTASKS:
        raise UserError(f"split_cifar100: --ntasks must be one of {', '.join(map(str, NTASKS))}, got {ntasks}")
    tensors = normalised_source(data_dir, 'split_cifar100', 'CIFAR100', MEAN, STD)
    order = task_order(ntasks, seed, fixed_order or not seed_order)
    print('Task order =', order)
    data = split_classes(tensors, 'cifar100', NCLASSES // ntasks, order, seed,
                         PC_VALID if pc_valid is None else pc_valid)
    return data, taskcla_of(data), INPUTSIZE
