"""5-Datasets: CIFAR-10, MNIST, SVHN, Fashion-MNIST and notMNIST, one task of 10 classes each, as 3x32x32 images: the
benchmark of GPM (Saha, Garg & Roy, ICLR 2021; github.com/sahagobinda/GPM, dataloader/five_datasets.py and
main_five_dataset.py, read at commit 1a238ec).

GPM's five_datasets.py is HAT's mixture.py cut down to these five sets (its first line says so), so the mixture's
readers, normalisation and caches (dat/binary_mixture/<name>/) serve here as they are: each set's mean and std (the
same numbers in both), MNIST and Fashion-MNIST padded from 28x28 to 32x32 with black before normalising, grey sets
copied to three channels. Where GPM differs from our mixture, this follows GPM:
- the tasks stay in GPM's order, cifar10, mnist, svhn, fashion-mnist, notmnist (its `idata = np.arange(5)`, the
  seed's shuffle commented out); `--seed-order` shuffles them by the seed as the mixture does;
- SVHN's labels are torchvision's (digit d is class d, GPM's DataLoader over datasets.SVHN), where the mixture keeps
  the original HAT code's (digit d is class d - 1): the same ten classes, relabelled;
- the validation set is 5% of each task's training set, shuffled by the seed (main_five_dataset.py's
  --pc_valid 0.05; its get() holds out as HAT's code does).
"""
from pathlib import Path

from dataloaders import mixture

INPUTSIZE = mixture.INPUTSIZE
DEFAULT_NETWORK = 'resnet18_reduced'  # GPM's reduced ResNet-18 for 5-Datasets (main_five_dataset.py: ResNet18(nf=20))
PC_VALID = 0.05
FIVE = mixture.Collection('five_datasets', tuple(mixture.DATASETS[mixture.NAMES.index(name)] for name in (
    'cifar10', 'mnist', 'svhn', 'fashion-mnist', 'notmnist')), PC_VALID)
NAMES = FIVE.names


def add_arguments(parser) -> None:
    """The experiment's own flags."""
    FIVE.add_arguments(parser)
    parser.add_argument('--seed-order', action='store_true',
                        help="order the tasks by the seed, as the mixture (default: GPM's fixed order)")


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None,
        datasets: list[str] | None = None, seed_order: bool = False):
    """The five tasks (or the named ones) in GPM's order (or the seed's), each with a seeded validation split."""
    data, taskcla, inputsize = FIVE.get(data_dir, seed, fixed_order or not seed_order, pc_valid, datasets)
    for task in data:
        if task['name'] == 'svhn':  # the mixture's class d - 1 of digit d back to torchvision's class d
            for split in ('train', 'valid', 'test'):
                task[split]['y'] = (task[split]['y'] + 1) % 10
    return data, taskcla, inputsize
