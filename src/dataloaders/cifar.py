"""CIFAR-10 as 5 tasks of 2 classes and CIFAR-100 as 5 tasks of 20 classes, in a seed-shuffled order (the
original's)."""
from pathlib import Path

from dataloaders._common import cached, normalise, read_cifar, source_files, split_valid, task_order, taskcla_of
from plumbing.utils import UserError

INPUTSIZE = [3, 32, 32]
DEFAULT_NETWORK = 'alexnet'
PC_VALID = 0.10
MEAN = [x / 255 for x in (125.3, 123.0, 113.9)]
STD = [x / 255 for x in (63.0, 62.1, 66.7)]
# (torchvision class, first task id, classes per task): 5 tasks each; the k-th holds labels k*n .. k*n+n-1 as 0..n-1
SOURCES = (('CIFAR10', 0, 2), ('CIFAR100', 5, 20))
TASKS_PER_SOURCE = 5


def _build(data_dir: Path) -> dict:
    """The 10 tasks in their canonical order (before seed shuffling and validation split)."""
    from torchvision import datasets
    out, missing = {}, {}
    for cls_name, first, per_task in SOURCES:
        cls = getattr(datasets, cls_name)
        for split in ('train', 'test'):
            try:
                images, labels = read_cifar(cls, data_dir, train=split == 'train')
            except UserError as e:  # the other data set is tried too, so that one message names all that is missing
                missing[cls_name] = str(e)
                break
            rows = images.view(len(images), -1)  # (N, C * H * W): whole rows are gathered faster than pixels
            for k in range(TASKS_PER_SOURCE):
                keep = labels // per_task == k
                task_images = rows.index_select(0, keep.nonzero().squeeze(1)).view(-1, *INPUTSIZE)  # (n, C, H, W)
                out[f'{first + k}_{split}_x'] = normalise(task_images, MEAN, STD)  # one task at a time: low peak
                out[f'{first + k}_{split}_y'] = labels[keep] % per_task
    if len(missing) == 1:
        raise UserError(*missing.values())
    if missing:
        raise UserError(f"cifar: missing data for {', '.join(missing)}. "
                        + ' '.join(f'[{name}] {message}' for name, message in missing.items()))
    return out


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None):
    """Ten CIFAR tasks ordered by the seed, each with a seeded validation split of its training set."""
    sources = [p for name, _, _ in SOURCES for p in source_files(name, data_dir)]
    tensors = cached(data_dir / 'binary_cifar', sources, lambda: _build(data_dir),
                     extra={'mean': MEAN, 'std': STD})
    data = []
    ids = task_order(10, seed, fixed_order)
    print('Task order =', ids)
    for i in ids:
        task = {split: {'x': tensors[f'{i}_{split}_x'], 'y': tensors[f'{i}_{split}_y']} for split in ('train', 'test')}
        task['ncla'] = SOURCES[0][2] if i < 5 else SOURCES[1][2]
        task['name'] = f'cifar10-{i}' if i < 5 else f'cifar100-{i - 5}'
        data.append(task)
    split_valid(data, seed, PC_VALID if pc_valid is None else pc_valid)
    return data, taskcla_of(data), INPUTSIZE
