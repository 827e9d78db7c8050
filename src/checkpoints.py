"""A run's checkpoint: after each finished task, what continuing after it needs (settings, the approach's state, the
matrices so far, the RNG states), so that a stopped run resumes bitwise where it stopped (run.py --resume)."""
from pathlib import Path

import numpy as np
import torch

import files
import utils

FORMAT = 2  # bump when what save() writes changes (2: the approaches and networks were redesigned; their
# frozen copies, pickled whole, would not run under the new classes)


# Flags that only say where things go or how to run: a checkpoint may be resumed with different ones
NOT_IN_CONFIG = ('output', 'results_dir', 'logs_dir', 'data_dir', 'device', 'cuda_graphs', 'deterministic', 'resume',
                 'overwrite')


def path_for(args) -> Path:
    """Where a run keeps the checkpoint of its last finished task."""
    return Path(args.logs_dir) / (Path(args.output).stem + '_checkpoint.pt')


def plain_args(args) -> dict:
    """Every argument, paths as strings (what the results and checkpoints save)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def config(args) -> dict:
    """The settings that decide a run's results (a checkpoint continues only a run with the same ones)."""
    return {k: v for k, v in sorted(plain_args(args).items()) if k not in NOT_IN_CONFIG}


def save(path: Path, args, appr, progress: dict) -> None:
    """Everything needed to continue after the tasks done: settings, approach state, matrices, RNG states."""
    rng = {'numpy': np.random.get_state(), 'torch': torch.get_rng_state(),
           'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    state = {'format': FORMAT, 'config': config(args), 'appr': appr.state(), 'rng': rng, **progress}
    files.atomic_write(path, lambda f: torch.save(state, f))


def load(path: Path, args, appr) -> dict | None:
    """Restore a checkpoint into appr and the RNGs and return its progress; None where there is none."""
    if not path.is_file():
        return None
    try:
        # Our own file in the user's logs folder, as trusted as the .pkl results: it holds numpy RNG states and
        # approach state (frozen copies of the network) that weights_only loading refuses
        state = torch.load(path, map_location=appr.device, weights_only=False)
    except Exception as e:  # torch raises many kinds on a truncated or foreign file
        raise utils.UserError(f'cannot read checkpoint {path} ({type(e).__name__}); delete it to start over') from None
    if state.get('format') != FORMAT:
        raise utils.UserError(f'checkpoint {path} is from another version of this code; delete it to start over')
    current = config(args)
    differ = sorted(k for k in set(state['config']) | set(current) if state['config'].get(k) != current.get(k))
    if differ:
        flags = ', '.join('--' + k.replace('_', '-') for k in differ)
        raise utils.UserError(f'checkpoint {path} was made with other settings ({flags}); resume with the same '
                              f'flags, or delete it to start over')
    appr.load_state(state['appr'])
    np.random.set_state(state['rng']['numpy'])
    torch.set_rng_state(state['rng']['torch'])
    if state['rng']['cuda'] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['rng']['cuda'])
    return {k: state[k] for k in ('tasks_done', 'acc', 'lss', 'seconds_per_task', 'seconds', 'log_bytes')}
