"""The training loop every approach shares (the original's, written once), with hooks for what approaches change.

Per task: plain SGD, minibatches of a reshuffled training set; after each epoch evaluate on train and valid, keep
the weights of the best validation loss; after lr_patience epochs without improvement divide the learning rate by
lr_factor and restart the optimizer; stop below lr_min or after nepochs; restore the best weights.
"""
import contextlib
import math
import time

import numpy as np
import torch
from tqdm import tqdm

from approaches._graphs import StepGraphs
import utils


class Appr:
    """Base approach: fine-tuning with SGD (the `sgd` approach is this class as it is)."""

    network_variant = None  # 'hat' for approaches that need a network with task gates (networks/*_hat.py)
    parameter_names: tuple[str, ...] = ()  # what the legacy --parameter a,b,... sets, in the original's order
    clipgrad = 10000  # the original's gradient-norm clip for sgd and hat; approaches override theirs
    checkpoint_attrs: tuple[str, ...] = ()  # attributes carried from one task to the next, saved in checkpoints
    # Whether the training step and an evaluation batch may be replayed as CUDA graphs (approaches/_graphs.py): true
    # when they never wait for the host and read only tensors that keep their memory for the task's duration
    graph_safe = True

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Declare this approach's flags (subclasses extend, calling super())."""
        parser.add_argument('--clipgrad', type=float, default=cls.clipgrad,
                            help='gradient-norm clipping threshold (default: %(default)s)')
        parser.add_argument('--lr-min', type=float, default=1e-4,
                            help='stop a task once the learning rate falls below this (default: %(default)s)')
        parser.add_argument('--lr-factor', type=float, default=3,
                            help='divide the learning rate by this on a plateau (default: %(default)s)')
        parser.add_argument('--lr-patience', type=int, default=5,
                            help='epochs without validation improvement before dividing the lr (default: %(default)s)')

    @classmethod
    def parse_parameter(cls, values: list[str], types: dict) -> dict:
        """The named flags set by the original's --parameter a,b,...: parameter_names in order, typed as the flags;
        a ValueError says what is wrong."""
        names = cls.parameter_names
        if len(values) > len(names):
            raise ValueError(f"takes {','.join(names) if names else 'no values'}")
        settings = {}
        for name, value in zip(names, values):
            try:
                settings[name] = types[name](value)
            except ValueError:
                raise ValueError(f"{name} must be a number, got '{value}'") from None
        return settings

    def __init__(self, model: torch.nn.Module, args, device: torch.device, log: utils.EpochLog):
        self.model = model
        self.device = device
        self.log = log
        self.nepochs = args.nepochs
        self.sbatch = args.batch_size
        self.eval_sbatch = args.eval_batch_size or args.batch_size
        self.lr = args.lr
        self.lr_min = args.lr_min
        self.lr_factor = args.lr_factor
        self.lr_patience = args.lr_patience
        self.clipgrad = args.clipgrad
        self.ce = torch.nn.CrossEntropyLoss()
        # The optional fast modes (off by default: each changes the arithmetic; see the readme's Speed section)
        self.amp_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(args.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=args.amp == 'fp16')  # fp16 gradients would underflow
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        if args.compile:
            model.compile(mode=args.compile)
        self.optimizer = self._get_optimizer()
        # Autocast caches casts across a capture and fp16's loss scaling reads its scale on the host; torch.compile's
        # reduce-overhead mode has graphs of its own
        use_graphs = args.cuda_graphs and self.graph_safe and not args.amp and not args.compile
        self.graphs = StepGraphs(device) if device.type == 'cuda' and use_graphs else None

    def _get_optimizer(self, lr: float | None = None) -> torch.optim.Optimizer:
        return torch.optim.SGD([p for p in self.model.parameters() if p.requires_grad],
                               lr=self.lr if lr is None else lr)

    ####################################################################################################################
    # Hooks

    def training_sets(self, t: int, data: list[dict]):
        """((x, y, task), (x, y, task)) to train and validate on; task is an int, or a tensor of per-sample tasks."""
        return tuple((data[t][split]['x'], data[t][split]['y'], t) for split in ('train', 'valid'))

    def pre_train(self, t: int) -> None:
        """Before training task t."""

    def pre_batch(self, position: tuple[int, int]) -> None:
        """Before each training step, with (index of the batch's first sample, samples in the epoch); what depends on
        it must be written into tensors here (e.g. HAT's gate temperature): a step replayed as a CUDA graph does not
        run forward() and the hooks below again."""

    def forward(self, t, x: torch.Tensor, position: tuple[int, int] | None = None) -> list[torch.Tensor]:
        """Logits of every head; position is pre_batch's in training (to tell training apart: its values are those
        of the step a graph was captured on), None when evaluating."""
        return self.model(x)

    def criterion(self, t, outputs: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """The loss minimised (and reported) for task t."""
        return self.ce(outputs[t], y)

    def metrics(self) -> dict[str, torch.Tensor]:
        """Extra scalars of the last criterion() call, averaged over batches in evaluation (e.g. HAT's regulariser)."""
        return {}

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
        train, valid = self.training_sets(t, data)
        self._drop_graphs()
        self.pre_train(t)
        self.fit(t, train, valid, self.nepochs)
        self.post_train(t, data)
        self._drop_graphs()  # post_train replaces what the graphs read (masks, anchors, frozen copies...)

    def fit(self, t: int, train: tuple, valid: tuple, nepochs: int) -> float:
        """The patience loop on (x, y, task) sets as training_sets() gives them: restores the weights of the best
        validation loss and returns that loss. t is the task being learned (for the logs)."""
        best_loss = math.inf
        best_model = utils.get_model(self.model)
        lr = self.lr
        patience = self.lr_patience
        self.optimizer = self._get_optimizer(lr)
        for e in range(nepochs):
            on_train, on_valid, line, seconds = self.epoch(t, e, lr, train, valid)
            improved = on_valid['loss'] < best_loss
            if improved:
                best_loss = on_valid['loss']
                best_model = utils.get_model(self.model)
                patience = self.lr_patience
                line += ' *'
            else:
                patience -= 1
                if patience <= 0:
                    lr /= self.lr_factor
                    line += f' lr={lr:.1e}'
                    patience = self.lr_patience
                    self.optimizer = self._get_optimizer(lr)
                    self._drop_graphs(keep=lambda key: key[0] != 'train')  # they hold the old learning rate
            print(line)
            self.post_epoch(t, e, on_train, on_valid)
            self.log_epoch(t, e, lr, improved, seconds, on_train, on_valid)
            if lr < self.lr_min:
                break
        utils.set_model_(self.model, best_model)
        return best_loss

    def epoch(self, t: int, e: int, lr: float, train: tuple, valid: tuple) -> tuple[dict, dict, str, tuple]:
        """Epoch e of task t: train on the (x, y, task) training set, then evaluate on it and on the validation set.
        Returns evaluate()'s results on both, the epoch's line of output (without the loop's marks) and the seconds
        of training and of the evaluations; a non-finite loss stops the run."""
        (x, y, task), (xv, yv, taskv) = train, valid
        clock0 = time.time()
        self.train_epoch(task, x, y)
        self._sync()
        clock1 = time.time()
        on_train = self.evaluate(task, x, y)
        clock2 = time.time()
        on_valid = self.evaluate(taskv, xv, yv)
        if not math.isfinite(on_train['loss']):
            raise utils.UserError(f'training diverged: non-finite loss at task {t}, epoch {e + 1} (lr={lr:.1e}); '
                                  f'try a smaller --lr')
        ms_train, ms_eval = (1000 * self.sbatch * (c - c0) / x.size(0) for c0, c in ((clock0, clock1),
                                                                                    (clock1, clock2)))
        line = (f'| Epoch {e + 1:3d}, time={ms_train:5.1f}ms/{ms_eval:5.1f}ms | Train: {_fmt(on_train)} |'
                f' Valid: {_fmt(on_valid)} |')
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
        n = x.size(0)
        r = torch.from_numpy(np.random.permutation(n)).to(self.device)
        with self._graph_stream():
            for i in tqdm(range(0, n, self.sbatch), desc='train', leave=False, disable=None):
                b = r[i:i + self.sbatch]
                self.pre_batch((i, n))
                if self._replayable(task, b, self.sbatch):
                    key = ('train', task, x.data_ptr(), y.data_ptr(), id(self.optimizer))
                    self.graphs.run(key, lambda index: self.train_batch(task, x[index], y[index], (i, n)), b,
                                    keep=(x, y, self.optimizer))
                else:
                    self.train_batch(_take(task, b), x[b], y[b], (i, n))

    def train_batch(self, t, x: torch.Tensor, y: torch.Tensor, position: tuple[int, int]) -> None:
        """One SGD step on one minibatch."""
        with self._autocast():
            loss = self.criterion(t, self.forward(t, x, position), y)
        self.optimizer.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # the hooks and the clipping see the true gradients (no-ops without fp16)
        self.post_backward(t)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clipgrad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.post_step(t)

    @torch.no_grad()
    def evaluate(self, task, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Mean loss, accuracy and metrics() over a set, in minibatches of --eval-batch-size (default: the training
        batch size, as the original)."""
        self.model.eval()
        sums = {}
        n = x.size(0)
        with self._graph_stream():
            positions = torch.arange(n, device=self.device) if self.graphs is not None else None
            for i in range(0, n, self.eval_sbatch):
                b = slice(i, i + self.eval_sbatch)
                if self._replayable(task, range(n)[b], self.eval_sbatch):
                    key = ('eval', task, x.data_ptr(), y.data_ptr())
                    batch = self.graphs.run(key, lambda index: self.eval_batch(task, x[index], y[index]),
                                            positions[b], keep=(x, y))
                else:
                    batch = self.eval_batch(_take(task, b), x[b], y[b])
                # Batch means times batch sizes, summed in float64 (the original's arithmetic) without host syncs
                for k, v in batch.items():
                    sums[k] = sums.get(k, 0) + v
        hits = sums.pop('hits')
        return {'loss': sums['loss'].item() / n, 'acc': hits.item() / n,
                **{k: v.item() / n for k, v in sums.items() if k != 'loss'}}

    def eval_batch(self, t, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One evaluation minibatch: its loss and metrics() times its size, in float64, and its number of hits."""
        with self._autocast():
            outputs = self.forward(t, x)
            losses = {'loss': self.criterion(t, outputs, y), **self.metrics()}
        return {**{k: v.double() * len(y) for k, v in losses.items()}, 'hits': (self.predict(t, outputs) == y).sum()}

    def eval(self, t: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(loss, accuracy) of task t's head on a test set."""
        result = self.evaluate(t, x, y)
        return result['loss'], result['acc']

    def _replayable(self, task, batch, size: int) -> bool:
        """Whether this batch goes through a CUDA graph: graphs are on, the task is one int and the batch full."""
        return self.graphs is not None and not torch.is_tensor(task) and len(batch) == size

    def _graph_stream(self):
        return self.graphs.stream_context() if self.graphs is not None else contextlib.nullcontext()

    def _drop_graphs(self, keep=lambda key: False) -> None:
        if self.graphs is not None:
            self.graphs.drop(keep)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


def _take(task, index):
    """The task ids of a batch: the same int for every sample, or a slice of per-sample task ids."""
    return task[index] if torch.is_tensor(task) else task


def _fmt(result: dict[str, float]) -> str:
    extra = ''.join(f', {k}={v:.3f}' for k, v in result.items() if k not in ('loss', 'acc'))
    return f"loss={result['loss']:.3f}, acc={100 * result['acc']:5.1f}%{extra}"
