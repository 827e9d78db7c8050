"""The training loop every approach shares (the original's, written once), with hooks for what approaches change.

Per task: plain SGD, minibatches of a reshuffled training set; after each epoch evaluate on train and valid, keep
the weights of the best validation loss; after lr_patience epochs without improvement divide the learning rate by
lr_factor and restart the optimizer; stop below lr_min or after nepochs; restore the best weights.

An approach is built from three things, never from the command line: its hyperparameters (its Hyper dataclass,
which also declares their flags), the loop's configuration (Loop) and the run's context (Context: device, logs).
A test builds one in a line: `ewc.Appr(net, ewc.Appr.Hyper(lamb=100), Loop(nepochs=1))`.
"""
import dataclasses
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from approaches import _agnostic
from approaches._fast import FastPath, Speed
from networks._contract import BatchError
from plumbing import hparams, logs, utils
from plumbing.hparams import param


@dataclass
class Loop:
    """How the shared loop trains, with the original's defaults (the flags of the same names)."""
    nepochs: int = param(200, 'maximum epochs per task', bounds='[1, inf)')
    lr: float = param(0.05, 'initial SGD learning rate', bounds='(0, inf)')
    batch_size: int = param(64, 'minibatch size', bounds='[1, inf)')
    eval_batch_size: int | None = param(None, "minibatch size of the evaluations (default: --batch-size, the "
                                        "original's); larger is faster on a GPU and changes the losses in their last "
                                        "bits", type=int, bounds='[1, inf)')
    # None: Appr.clipgrad. 0 would zero every gradient
    clipgrad: float | None = param(None, 'gradient-norm clipping threshold', type=float, bounds='(0, inf)')
    lr_min: float = param(1e-4, 'stop a task once the learning rate falls below this', bounds='[0, inf)')
    # 1 keeps the learning rate (the loop then ends after nepochs); below 1 would raise it on a plateau
    lr_factor: float = param(3, 'divide the learning rate by this on a plateau', type=float, bounds='[1, inf)')
    # fit() counts down and divides once the count reaches 0, so 0 would act as 1
    lr_patience: int = param(5, 'epochs without validation improvement before dividing the lr', bounds='[1, inf)')
    # The successors' authors trained otherwise: each approach declares its authors' choices (Appr.loop_defaults)
    optimizer: str = param('sgd', 'the optimizer, rebuilt at every task', choices=('sgd', 'adam'))
    momentum: float = param(0.0, "SGD's momentum", type=float, bounds='[0, 1)')
    weight_decay: float = param(0.0, "the optimizer's L2 weight decay", type=float, bounds='[0, inf)')
    lr_schedule: str = param('plateau', "plateau: the original's (divide by --lr-factor after --lr-patience epochs "
                             "without improvement, stop below --lr-min); cosine: annealed to 0 over --nepochs, once "
                             "per epoch; constant", choices=('plateau', 'cosine', 'constant'))
    optimizer_on_drop: str = param('new', "on a plateau's drop of the learning rate, a new optimizer (the "
                                   "original's) or the same one at the new rate (Adam keeps its moments)",
                                   choices=('new', 'kept'))
    keep: str = param('best', "the weights a task ends with: those of the best validation loss (the original's) or "
                      "of the last epoch", choices=('best', 'last'))


# The loop's flags that each approach shows among its own (clipgrad's default is the approach's)
APPROACH_LOOP_FLAGS = ('clipgrad', 'lr_min', 'lr_factor', 'lr_patience', 'optimizer', 'momentum', 'weight_decay',
                       'lr_schedule', 'optimizer_on_drop', 'keep')


@dataclass
class Context:
    """What an approach may know of the run besides its settings: where it runs, where its logs go."""
    device: torch.device = field(default_factory=lambda: torch.device('cpu'))
    log: logs.EpochLog = field(default_factory=lambda: logs.EpochLog(None))  # the per-epoch JSON-lines log
    logs_dir: Path = utils.LOGS_DIR
    name: str = 'run'  # the run's results' file stem, which its other logs are named after
    speed: Speed = field(default_factory=Speed)


class Appr:
    """Base approach: fine-tuning with SGD (the `sgd` approach is this class as it is)."""

    @dataclass
    class Hyper:
        """The approach's hyperparameters (fields declared with hparams.param, each giving a flag)."""

    network_variant = None  # 'hat' for approaches that need a network with task gates (networks/*_hat.py)
    parameter_names: tuple[str, ...] = ()  # what the legacy --parameter a,b,... sets: Hyper's fields marked legacy
    clipgrad = 10000  # the original's gradient-norm clip for sgd and hat; approaches override theirs
    checkpoint_attrs: tuple[str, ...] = ()  # attributes carried from one task to the next, saved in checkpoints
    # Whether the training step and an evaluation batch may be replayed as CUDA graphs (approaches/_fast.py): true
    # when they never wait for the host and read only tensors that keep their memory for the task's duration
    graph_safe = True
    # False for an approach that learns nothing by gradient (random): no optimizer is built and fit() is not called;
    # its post_train() takes what it keeps from the task, and it overrides test()
    trains = True
    # Whether the forward computes differently for each task (masks, columns, paths): a task-agnostic evaluation
    # (approaches/_agnostic.py) then runs each learned task's own forward and infers the task by a rule; otherwise one
    # forward gives every head, from one shared body
    forward_per_task = False
    # The loop's settings where the approach's authors differ from the original's Loop defaults, by experiment name
    # ('*': every experiment): the defaults of those flags in a run of the approach; a test building an approach in
    # code gets Loop's own defaults
    loop_defaults: dict[str, dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.parameter_names = hparams.legacy_names(cls.Hyper)

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Declare the flags of the loop's per-approach settings and of Hyper's fields."""
        hparams.add_flags(parser, Loop, APPROACH_LOOP_FLAGS, defaults={'clipgrad': cls.clipgrad})
        hparams.add_flags(parser, cls.Hyper)

    @classmethod
    def loop_defaults_for(cls, experiment: str | None) -> dict:
        """The defaults of the loop's flags that loop_defaults sets for the experiment."""
        return {**cls.loop_defaults.get('*', {}), **cls.loop_defaults.get(experiment, {})}

    @classmethod
    def settle(cls, hp, network_cls: type):
        """hp with what the approach decides by the network filled in (hat-test's emb_init), before the network is
        built: run.py saves these values with the results."""
        return hp

    @classmethod
    def parse_parameter(cls, values: list[str]) -> dict:
        """The named flags set by the original's --parameter a,b,...; a ValueError says what is wrong."""
        return hparams.parse_legacy(cls.Hyper, values)

    def __init__(self, model: torch.nn.Module, hp=None, loop: Loop | None = None, context: Context | None = None):
        self.model = model
        self.hp = self.Hyper() if hp is None else hp
        loop = loop or Loop()
        self.loop = dataclasses.replace(loop, clipgrad=self.clipgrad) if loop.clipgrad is None else loop
        # As the flags check them: an approach built in code gets the same ranges
        hparams.validate(self.hp)
        hparams.validate(self.loop)
        self.context = context or Context()
        self.device = self.context.device
        self.log = self.context.log
        self.ce = torch.nn.CrossEntropyLoss()
        self.fast = FastPath(self.context.speed, model, self.device, self.graph_safe)
        self.optimizer = self.make_optimizer(self.loop.lr) if self.trains else None

    def make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """--optimizer over the trainable parameters (plain SGD by default, the original's; rebuilt at every task and,
        with --optimizer-on-drop new, every drop of the learning rate)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.loop.optimizer == 'adam':
            return torch.optim.Adam(params, lr=lr, weight_decay=self.loop.weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=self.loop.momentum, weight_decay=self.loop.weight_decay)

    def set_lr(self, lr: float) -> None:
        """The learning rate of the steps to come: a new optimizer, or the same one at the new rate."""
        if self.loop.optimizer_on_drop == 'new':
            self.optimizer = self.make_optimizer(lr)
        else:
            for group in self.optimizer.param_groups:
                group['lr'] = lr
        self.fast.drop(keep=lambda key: key[0] != 'train')  # they hold the old learning rate

    ####################################################################################################################
    # Hooks

    def training_sets(self, t: int, data: list[dict]):
        """((x, y, task), (x, y, task)) to train and validate on; task is an int, or a tensor of per-sample tasks."""
        return tuple((data[t][split]['x'], data[t][split]['y'], t) for split in ('train', 'valid'))

    def pre_train(self, t: int) -> None:
        """Before training task t."""

    def pre_batch(self, position: tuple[int, int]) -> None:
        """Before each training step, with (index of the batch's first sample, samples in the epoch). What a step
        takes from it is written into tensors that forward() reads (e.g. HAT's gate temperature): a step replayed as
        a CUDA graph does not run the hooks below again, only their kernels."""

    def forward(self, t, x: torch.Tensor, training: bool) -> tuple[list[torch.Tensor], dict]:
        """Logits of every head, and what criterion() needs besides them (e.g. HAT's gates)."""
        return self.model(x), {}

    def criterion(self, t, outputs: list[torch.Tensor], y: torch.Tensor, extras: dict) \
            -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss minimised (and reported) for task t, and the named terms reported beside it (e.g. HAT's
        regulariser), averaged over batches in evaluation."""
        return self.ce(outputs[t], y), {}

    def loss(self, t, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The criterion's loss of a training forward pass on (x, y) (e.g. for a Fisher diagonal)."""
        outputs, extras = self.forward(t, x, training=True)
        return self.criterion(t, outputs, y, extras)[0]

    def predict(self, t, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Predicted class of each sample."""
        return outputs[t].argmax(1)

    def post_backward(self, t: int) -> None:
        """After loss.backward(), before clipping and the optimizer step (gradients may be edited here)."""

    def post_step(self, t: int) -> None:
        """After the optimizer step."""

    def post_epoch(self, t: int, epoch: int, on_train: dict, on_valid: dict) -> None:
        """After each epoch's evaluation (epoch counts from 0), with evaluate()'s results on train and valid."""

    def post_train(self, t: int, data: list[dict]) -> None:
        """After task t's best weights are restored."""

    def after_tests(self, t: int, results: dict) -> None:
        """After task t's tests, with the results run.py has just saved (acc, lss, task_names, args...)."""

    def capacity(self, t: int) -> dict | None:
        """After task t (its tests done), what the tasks learned so far take of the network, for an approach that
        sets parts of it aside per task (hat, packnet, wsn, gpm...): a capacity_record(), which run.py saves with the
        results; None (the default) for the others."""
        return None

    ####################################################################################################################
    # Checkpoints

    def state(self) -> dict:
        """What continuing after the last finished task needs: the weights, which parameters are frozen, and the
        checkpoint_attrs (the optimizer is rebuilt at every task, so it carries nothing)."""
        return {'model': self.model.state_dict(),
                'frozen': [n for n, p in self.model.named_parameters() if not p.requires_grad],
                'attrs': {a: getattr(self, a) for a in self.checkpoint_attrs}}

    def load_state(self, state: dict) -> None:
        """Restore what state() returned."""
        self.model.load_state_dict(state['model'])
        frozen = set(state['frozen'])
        for name, p in self.model.named_parameters():
            p.requires_grad_(name not in frozen)
        for name, value in state['attrs'].items():
            setattr(self, name, value)

    ####################################################################################################################
    # The loop

    def train(self, t: int, data: list[dict]) -> None:
        """Learn task t (data holds every task; approaches choose what they may see)."""
        self.fast.drop()
        self.pre_train(t)
        with _batch_sizes_named():
            if self.trains:
                self.fit(t, *self.training_sets(t, data))
            self.post_train(t, data)
        self.fast.drop()  # post_train replaces what the graphs read (masks, anchors, frozen copies...)

    def fit(self, t: int, train: tuple, valid: tuple) -> float:
        """The patience loop on (x, y, task) sets as training_sets() gives them: restores the weights of the best
        validation loss and returns that loss. t is the task being learned (for the logs)."""
        best_loss = math.inf
        best_model = utils.get_model(self.model)
        lr = self.loop.lr
        patience = self.loop.lr_patience
        self.optimizer = self.make_optimizer(lr)
        for e in range(self.loop.nepochs):
            on_train, on_valid, line, seconds = self.epoch(t, e, lr, train, valid)
            improved = on_valid['loss'] < best_loss
            if improved:
                best_loss = on_valid['loss']
                best_model = utils.get_model(self.model)
                patience = self.loop.lr_patience
                line += ' *'
            elif self.loop.lr_schedule == 'plateau':
                patience -= 1
                if patience <= 0:
                    lr /= self.loop.lr_factor
                    line += f' lr={lr:.1e}'
                    patience = self.loop.lr_patience
                    self.set_lr(lr)
            print(line)
            self.post_epoch(t, e, on_train, on_valid)
            self.log_epoch(t, e, lr, improved, seconds, on_train, on_valid)
            if self.loop.lr_schedule == 'plateau' and lr < self.loop.lr_min:
                break
            if self.loop.lr_schedule == 'cosine':  # torch's CosineAnnealingLR over nepochs, stepped after each epoch
                lr = self.loop.lr * (1 + math.cos(math.pi * (e + 1) / self.loop.nepochs)) / 2
                self.set_lr(lr)
        if self.loop.keep == 'best':
            utils.set_model_(self.model, best_model)
        return best_loss

    def epoch(self, t: int, e: int, lr: float, train: tuple, valid: tuple) -> tuple[dict, dict, str, tuple]:
        """Epoch e of task t: train on the (x, y, task) training set, then evaluate on it and on the validation set.
        Returns evaluate()'s results on both, the epoch's line of output (without the loop's marks) and the seconds
        of training and of the evaluations; a non-finite loss stops the run."""
        (x, y, task), (xv, yv, taskv) = train, valid
        clock0 = time.time()
        self.train_epoch(task, x, y)
        self.fast.synchronize()
        clock1 = time.time()
        on_train = self.evaluate(task, x, y)
        clock2 = time.time()
        on_valid = self.evaluate(taskv, xv, yv)
        if not math.isfinite(on_train['loss']):
            raise utils.UserError(f'training diverged: non-finite loss at task {t}, epoch {e + 1} (lr={lr:.1e}); '
                                  f'try a smaller --lr')
        ms_train, ms_eval = (1000 * self.loop.batch_size * (c - c0) / x.size(0) for c0, c in ((clock0, clock1),
                                                                                              (clock1, clock2)))
        # The original's two times, per --batch-size training samples: the training pass, then the evaluation on
        # the training set that gives the Train column (the validation set's is not timed)
        line = (f'| Epoch {e + 1:3d}, train {ms_train:5.1f} ms/batch, eval {ms_eval:5.1f} ms/batch | Train: '
                f'{_fmt(on_train)} | Valid: {_fmt(on_valid)} |')
        return on_train, on_valid, line, (clock1 - clock0, time.time() - clock1)

    def log_epoch(self, t: int, e: int, lr: float, improved: bool, seconds: tuple, on_train: dict, on_valid: dict,
                  **fields) -> None:
        """The epoch's record in the JSON-lines log (fields: any the approach adds)."""
        self.log.write(task=t, epoch=e + 1, lr=lr, best=improved, seconds_train=seconds[0], seconds_eval=seconds[1],
                       **{'train_' + k: v for k, v in on_train.items()},
                       **{'valid_' + k: v for k, v in on_valid.items()}, **fields)

    def train_epoch(self, task, x: torch.Tensor, y: torch.Tensor) -> None:
        """One pass over the training set in minibatches, reshuffled by numpy's global generator (as the original)."""
        self.model.train()
        n, size = x.size(0), self.loop.batch_size
        r = torch.from_numpy(np.random.permutation(n)).to(self.device)
        with self.fast.batches():
            for i in tqdm(range(0, n, size), desc='train', leave=False, disable=None):
                b = r[i:i + size]
                self.pre_batch((i, n))
                step = lambda index: self.train_batch(_take(task, index), x[index], y[index])  # noqa: E731
                if self.fast.replays(task, len(b), size):
                    key = ('train', task, x.data_ptr(), y.data_ptr(), id(self.optimizer))
                    self.fast.replay(key, step, b, keep=(x, y, self.optimizer))
                else:
                    step(b)

    def train_batch(self, t, x: torch.Tensor, y: torch.Tensor) -> None:
        """One SGD step on one minibatch."""
        with self.fast.autocast():
            loss = self.loss(t, x, y)
        self.optimizer.zero_grad()
        self.fast.backward(loss, self.optimizer)
        self.post_backward(t)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.loop.clipgrad)
        self.fast.step(self.optimizer)
        self.post_step(t)

    @torch.no_grad()
    def evaluate(self, task, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Mean loss, accuracy and criterion()'s terms over a set, in minibatches of --eval-batch-size (default: the
        training batch size, as the original)."""
        self.model.eval()
        sums = {}
        n, size = x.size(0), self.loop.eval_batch_size or self.loop.batch_size
        with self.fast.batches():
            for i in range(0, n, size):
                b = slice(i, i + size)
                step = lambda index: self.eval_batch(_take(task, index), x[index], y[index])  # noqa: E731
                if self.fast.replays(task, len(range(n)[b]), size):
                    key = ('eval', task, x.data_ptr(), y.data_ptr())
                    batch = self.fast.replay(key, step, torch.arange(i, i + size, device=self.device), keep=(x, y))
                else:
                    batch = step(b)
                # Batch means times batch sizes, summed in float64 (the original's arithmetic) without host syncs
                for k, v in batch.items():
                    sums[k] = sums.get(k, 0) + v
        hits = sums.pop('hits')
        return {'loss': sums['loss'].item() / n, 'acc': hits.item() / n,
                **{k: v.item() / n for k, v in sums.items() if k != 'loss'}}

    def eval_batch(self, t, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One evaluation minibatch: its loss and criterion()'s terms times its size, in float64, and its hits."""
        with self.fast.autocast():
            outputs, extras = self.forward(t, x, training=False)
            loss, terms = self.criterion(t, outputs, y, extras)
        return {**{k: v.double() * len(y) for k, v in {'loss': loss, **terms}.items()},
                'hits': (self.predict(t, outputs) == y).sum()}

    def test(self, t: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(loss, accuracy) of task t's head on a test set."""
        with _batch_sizes_named():
            result = self.evaluate(t, x, y)
        return result['loss'], result['acc']

    @torch.no_grad()
    def heads_logits(self, t: int, x: torch.Tensor, heads) -> list[torch.Tensor]:
        """The logits of the given heads on all of x through forward(t), in minibatches of --eval-batch-size."""
        self.model.eval()
        size = self.loop.eval_batch_size or self.loop.batch_size
        parts = []
        with _batch_sizes_named():
            for i in range(0, x.size(0), size):
                with self.fast.autocast():
                    outputs = self.forward(t, x[i:i + size], training=False)[0]
                parts.append([outputs[h].float() for h in heads])
        return [torch.cat(part) for part in zip(*parts)]

    def task_logits(self, u: int, x: torch.Tensor) -> torch.Tensor:
        """Head u's logits on x as the task-aware test of task u computes them (forward_per_task approaches)."""
        return self.heads_logits(u, x, [u])[0]

    def agnostic_logits(self, t: int, x: torch.Tensor) -> list[torch.Tensor]:
        """After task t, the logits of heads 0..t on x with no task label: each task's own forward where the forward
        depends on the task, else one forward for every head."""
        if self.forward_per_task:
            return [self.task_logits(u, x) for u in range(t + 1)]
        return self.heads_logits(t, x, range(t + 1))

    def test_agnostic(self, t: int, u: int, x: torch.Tensor, y: torch.Tensor, rules) -> dict[str, tuple[float, float]]:
        """After task t, task u's test set without its label: per rule (approaches/_agnostic.py), the accuracy among
        the classes of tasks 0..t and the share of samples whose task is inferred right."""
        n = x.size(0)
        found = _agnostic.counts(self.agnostic_logits(t, x), u, y, rules)
        return {rule: (right / n, task / n) for rule, (right, task) in found.items()}


def capacity_record(t: int, of: str, total: int, per_task: list[int], used: int, **extra) -> dict:
    """What capacity() returns: after task t, of `total` things of the network (`of`: 'weights', 'masked
    parameters', 'input dimensions'...), the share each task 0..t takes (per_task: counts, which overlap where tasks
    share), the share the tasks take together (used: a count) and the share left free; extra: the approach's own
    figures (JSON-like values)."""
    return {'task': t, 'of': of, 'total': total, 'per_task': [c / total for c in per_task], 'used': used / total,
            'free': 1 - used / total, **extra}


@contextmanager
def _batch_sizes_named():
    """A batch the network cannot compute (networks/_contract.BatchError) as a one-line error naming the flags that
    set the batch sizes: the network knows why, the loop knows the flags."""
    try:
        yield
    except BatchError as e:
        raise utils.UserError(f'{e}; choose another --batch-size or --eval-batch-size') from None


def _take(task, index):
    """The task ids of a batch: the same int for every sample, or a slice of per-sample task ids."""
    return task[index] if torch.is_tensor(task) else task


def _fmt(result: dict[str, float]) -> str:
    extra = ''.join(f', {k}={v:.3f}' for k, v in result.items() if k not in ('loss', 'acc'))
    return f"loss={result['loss']:.3f}, acc={100 * result['acc']:5.1f}%{extra}"
