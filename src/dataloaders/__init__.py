"""One module per experiment (`--experiment <module>`); files starting with '_' are shared parts, not choices.

The contract (checked for every module by tests/test_contracts.py; recipe and smallest example in docs/extending.md):

A module exposes
- `get(data_dir, seed=0, fixed_order=False, pc_valid=None, **options) -> (data, taskcla, inputsize)`: data[t] is a
  dict with 'name' (str), 'ncla' (int) and the splits 'train', 'valid', 'test', each {'x': float32 (N, C, H, W),
  'y': int64 (N,) in 0..ncla-1}; taskcla = [(t, ncla of task t), ...] (_common.taskcla_of); inputsize = [C, H, W].
  seed orders the tasks (_common.task_order, unless fixed_order) and draws the validation split; pc_valid None means
  the experiment's PC_VALID;
- `INPUTSIZE` ([C, H, W]), `DEFAULT_NETWORK` (the name of a plain network module: run.py adds the approach's variant,
  alexnet -> alexnet_hat) and `PC_VALID`: the fraction of each task's training set held out for validation, seeded
  (_common.split_valid), or 0 for the original MNIST experiments' validation on a copy of the training set;
- optionally `add_arguments(parser)`: the experiment's own flags, each of whose names (dests) is a keyword of get()
  with a default (run.py passes them to get(), e.g. split_cifar100's --ntasks as ntasks).
Data are read from data_dir through _common (torchvision sources, checked files) and cached as tensors in
data_dir/binary_<experiment>/ (_common.cached: rebuilt when the sources or CACHE_FORMAT change, used alone when the
sources are gone). Every problem with the data, missing, corrupt or unwritable, is one line (a plumbing.utils.UserError)
that names the file and says what to do.
"""
