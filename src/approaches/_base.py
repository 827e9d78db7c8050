"""The training loop every approach shares (the original's, written once), with hooks for what approaches change.

Per task: plain SGD, minibatches of a reshuffled training set; after each epoch evaluate on train and valid, keep
the weights of the best validation loss; after lr_patience epochs without improvement divide the learning rate by
lr_factor and restart the optimizer; stop below lr_min or after nepochs; restore the best weights.
"""
import math
import time

import numpy as np
import torch
from tqdm import tqdm

import utils


class Appr:
    """Base approach: fine-tuning with SGD (the `sgd` approach is this class as it is)."""

    network_variant = None  # 'hat' for approaches that need a network with task gates (networks/*_hat.py)
    parameter_names: tuple[str, ...] = ()  # what the legacy --parameter a,b,... sets, in the original's order
    clipgrad = 10000  # the original's gradient-norm clip for sgd and hat; approaches override theirs
    checkpoint_attrs: tuple[str, ...] = ()  # attributes carried from one task to the next, saved in checkpoints

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

    def forward(self, t, x: torch.Tensor, position: tuple[int, int] | None = None) -> list[torch.Tensor]:
        """Logits of every head; position = (index of the batch's first sample, samples in the epoch) in training,
        None when evaluating."""
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
        self.pre_train(t)
        self.fit(t, train, valid, self.nepochs)
        self.post_train(t, data)

    def fit(self, t: int, train: tuple, valid: tuple, nepochs: int) -> float:
        """The patience loop on (x, y, task) sets as training_sets() gives them: restores the weights of the best
        validation loss and returns that loss. t is the task being learned (for the logs)."""
        (x, y, task), (xv, yv, taskv) = train, valid
        best_loss = math.inf
        best_model = utils.get_model(self.model)
        lr = self.lr
        patience = self.lr_patience
        self.optimizer = self._get_optimizer(lr)
        for e in range(nepochs):
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
            print(line)
            self.post_epoch(t, e, on_train, on_valid)
            self.log.write(task=t, epoch=e + 1, lr=lr, best=improved, seconds_train=clock1 - clock0,
                           seconds_eval=time.time() - clock1, **{'train_' + k: v for k, v in on_train.items()},
                           **{'valid_' + k: v for k, v in on_valid.items()})
            if lr < self.lr_min:
                break
        utils.set_model_(self.model, best_model)
        return best_loss

    def train_epoch(self, task, x: torch.Tensor, y: torch.Tensor) -> None:
        """One pass over the training set in minibatches, reshuffled by numpy's global generator (as the original)."""
        self.model.train()
        n = x.size(0)
        r = torch.from_numpy(np.random.permutation(n)).to(self.device)
        for i in tqdm(range(0, n, self.sbatch), desc='train', leave=False, disable=None):
            b = r[i:i + self.sbatch]
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
        hits = torch.zeros((), dtype=torch.long, device=self.device)
        for i in range(0, x.size(0), self.eval_sbatch):
            b = slice(i, i + self.eval_sbatch)
            t, yb = _take(task, b), y[b]
            with self._autocast():
                outputs = self.forward(t, x[b])
                losses = {'loss': self.criterion(t, outputs, yb), **self.metrics()}
            # Accumulate batch means times batch sizes in float64, the original's arithmetic, without host syncs
            for k, v in losses.items():
                sums[k] = sums.get(k, 0) + v.double() * len(yb)
            hits += (self.predict(t, outputs) == yb).sum()
        n = x.size(0)
        return {'loss': sums['loss'].item() / n, 'acc': hits.item() / n,
                **{k: v.item() / n for k, v in sums.items() if k != 'loss'}}

    def eval(self, t: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(loss, accuracy) of task t's head on a test set."""
        result = self.evaluate(t, x, y)
        return result['loss'], result['acc']

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
