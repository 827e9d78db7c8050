"""A run's checkpoint: after each finished task, what continuing after it needs (settings, the approach's state, the
matrices so far, the RNG states), so that a stopped run resumes bitwise where it stopped (run.py --resume)."""
from pathlib import Path

import numpy as np
import torch

from plumbing import files, utils

FORMAT = 2  # bump when what save() writes changes (2: the approaches and networks were redesigned; their
# frozen copies, pickled whole, would not run under the new classes)


# Flags that only say where things go or how to run, and --parameter and --protocol, whose values the named flags
# hold: a run resumes, or is found finished, with different ones
NOT_IN_CONFIG = ('output', 'results_dir', 'logs_dir', 'data_dir', 'device', 'cuda_graphs', 'deterministic', 'resume',
                 'overwrite', 'parameter', 'protocol')


# Settings added to the loop after results were first saved, with the values every earlier run had: results and
# checkpoints that lack them were made with these (a finished run stays finished, a checkpoint resumes)
ADDED = {'optimizer': 'sgd', 'momentum': 0.0, 'weight_decay': 0.0, 'lr_schedule': 'plateau', 'optimizer_on_drop': 'new',
         'keep': 'best', 'task_agnostic': None}

SUFFIX = '_checkpoint.pt'


def path_for(logs_dir: Path, name: str) -> Path:
    """Where the run whose files are named `name` keeps the checkpoint of its last finished task."""
    return Path(logs_dir) / (name + SUFFIX)


def plain_args(args) -> dict:
    """Every argument, paths as strings (what the results and checkpoints save)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def config(args) -> dict:
    """The settings that decide a run's results (a checkpoint continues only a run with the same ones)."""
    return config_of(plain_args(args))


def config_of(saved_args: dict) -> dict:
    """config() of the arguments saved with results or a checkpoint (the settings added since, at their values then,
    where they lack them)."""
    return {k: v for k, v in sorted({**ADDED, **saved_args}.items()) if k not in NOT_IN_CONFIG}


def differences(saved: dict, current: dict) -> list[str]:
    """The flags whose values differ between two configs, as --flag names."""
    return ['--' + k.replace('_', '-') for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]


def without_task_agnostic(saved: dict, current: dict) -> bool:
    """Whether a run asked with --task-agnostic continues one that ran without it, all else the same."""
    return differences(saved, current) == ['--task-agnostic'] and saved.get('task_agnostic') is None


def task_agnostic_gap(what: str, tasks_done: int) -> str:
    """Why such a run cannot go on: the task-agnostic rows of the tasks done need the weights of that time."""
    return (f'{what}: its {tasks_done} finished tasks ran without --task-agnostic, whose rows need the weights right '
            f'after each task, gone now; resume without --task-agnostic, or --overwrite starts over with it')


def save(path: Path, args, appr, progress: dict) -> None:
    """Everything needed to continue after the tasks done: settings, approach state, matrices, RNG states."""
    rng = {'numpy': np.random.get_state(), 'torch': torch.get_rng_state(),
           'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    state = {'format': FORMAT, 'config': config(args), 'appr': appr.state(), 'rng': rng, **progress}
    files.atomic_write(path, lambda f: torch.save(state, f))


def load(path: Path, args, appr, replace_other: bool = False) -> dict | None:
    """Restore a checkpoint into appr and the RNGs and return its progress; None where there is none, or where it was
    made with other settings and either replace_other is set or it holds no finished task (a run that stopped in its
    first task, such as one given a learning rate that diverged: nothing of it is worth keeping)."""
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
    differ = differences(config_of(state['config']), config(args))
    if differ and (replace_other or state['tasks_done'] == 0):
        print(f"Checkpoint {path} was made with other settings ({', '.join(differ)}) after {state['tasks_done']} "
              f"tasks: starting from the first task")
        return None
    if without_task_agnostic(config_of(state['config']), config(args)):
        raise utils.UserError(task_agnostic_gap(f'checkpoint {path}', state['tasks_done']))
    if differ:
        raise utils.UserError(f"checkpoint {path} was made with other settings ({', '.join(differ)}); resume with the "
                              f"same flags, or --overwrite starts over")
    appr.load_state(state['appr'])
    np.random.set_state(state['rng']['numpy'])
    torch.set_rng_state(state['rng']['torch'])
    if state['rng']['cuda'] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['rng']['cuda'])
    return {k: v for k, v in state.items() if k not in ('format', 'config', 'appr', 'rng')}  # the run's progress
