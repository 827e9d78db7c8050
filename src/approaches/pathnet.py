"""PathNet (Fernando et al., 2017, https://arxiv.org/abs/1701.08734), as the original code's baseline
(src/approaches/pathnet.py), on a network from networks/*_pathnet.py.

Per task t:
  pre_train   modules on no earlier task's best path go back to their initial weights (pathnet.py:50-58);
  paths       P = 2 random paths, N distinct modules per layer (lines 61-72), drawn with numpy's global generator;
  generations each trains every path in turn with the shared patience loop, fit(), for nepochs // generations epochs
              (line 31), only its modules that no earlier best path holds and head t being trainable (line 86); the
              path of the lowest validation loss so far wins, the weights of that loss are restored (lines 105-110,
              129), and the loser becomes the winner's path with each entry moved by a step in [-2, 2] (mod M) with
              probability 1 / (N * L) (lines 134-144). Each path keeps its learning rate across generations, the
              loser taking the winner's (line 138); a task ends after the last generation or when every path's
              rate is below lr_min (line 80);
  best path   the winner's path is stored in the network (line 150) and is frozen from then on: task t's logits go
              through it and head t only, so they never change.

Where this differs from the original, because each turn of a path is one call of the shared loop, fit(): a path's
patience count and best validation loss restart at each turn (the original carried the winner's over, lines 113-125,
and reset the loser's, lines 136-139); a divided learning rate applies at once (the original's optimizer kept the old
rate until the path's next turn, lines 89 and 117-125); a turn ends on its best weights, so the next path starts from
them rather than from the last ones (each generation still ends on the best weights so far). With fewer --nepochs
than --generations, nepochs generations of one epoch are run, where the original trained nothing (nepochs //
generations = 0).
"""
import math

import numpy as np
import torch

from approaches import _base
import utils


class Appr(_base.Appr):
    """PathNet: a tournament of paths per task through shared modules; each task's best path is then frozen."""

    network_variant = 'pathnet'
    graph_safe = False  # not measured with CUDA graphs; runs eagerly
    checkpoint_attrs = ('initial_model',)  # the best paths are a buffer of the network
    parameter_names = ('generations',)  # pathnet.py:26-29
    clipgrad = 1000  # pathnet.py:12
    P = 2  # paths trained per generation, "from paper Secs 2.4 and 2.5" (pathnet.py:24)

    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument('--generations', type=int, default=20,
                            help='generations of the tournament per task, each training P = 2 paths for nepochs // '
                                 'generations epochs (fewer --nepochs than generations: nepochs generations of one '
                                 'epoch) (default: %(default)s; original grid 5, 10, 20, 50, 100, 200, "best was 20")')

    def __init__(self, model, args, device, log):
        super().__init__(model, args, device, log)
        if args.generations < 1:
            raise utils.UserError('--generations must be at least 1')
        self.generations = args.generations
        self.lr_start = self.lr
        self.initial_model = utils.get_model(model)
        self.path = None  # the path being trained, (L, N); None: each task's best path

    def _get_optimizer(self, lr=None):
        # fit() asks for an optimizer at every new learning rate: the last one asked for is the path's rate, which
        # it carries to its next generation
        self.path_lr = self.lr if lr is None else lr
        return super()._get_optimizer(lr)

    @torch.no_grad()
    def pre_train(self, t: int) -> None:
        taken = self.model.taken(t)
        for name, held in zip(self.model.layers, taken):
            for k, module in enumerate(getattr(self.model, name)):
                if k not in held:
                    for pname, p in module.named_parameters():
                        p.copy_(self.initial_model[f'{name}.{k}.{pname}'])

    def forward(self, t, x, position=None):
        # Only task t's head is computed: the others read their own paths. A dict keeps outputs[t].
        return {t: self.model(t, x, self.path)}

    def sample_paths(self) -> np.ndarray:
        """P random paths, (P, L, N) module indices, N distinct ones per layer."""
        # The original fills a random (P, L, N) draw that the shuffles then overwrite (lines 61-72): drawing it keeps
        # numpy's global stream, which also orders every later minibatch, the original's
        paths = np.random.randint(0, self.model.M - 1, size=(self.P, len(self.model.layers), self.model.N))
        modules = np.arange(self.model.M)
        for p in range(self.P):
            for l in range(len(self.model.layers)):
                np.random.shuffle(modules)  # one list, reshuffled from its last order, as the original's
                paths[p, l] = modules[:self.model.N]
        return paths

    def mutate(self, paths: np.ndarray, winner: int) -> None:
        """Overwrite the other paths with the winner's, each entry moved by a step in [-2, 2] (mod M) with
        probability 1 / (N * L), in place; the draws are the original's, in its order (lines 134-144). As there, a
        mutated layer may hold a module twice, which then counts twice in the sum."""
        npaths, nlayers, n = paths.shape
        probability = 1 / (n * nlayers)
        for p in range(npaths):
            if p == winner:
                continue
            for l in range(nlayers):
                for k in range(n):
                    paths[p, l, k] = paths[winner, l, k]
                    if np.random.rand() < probability:
                        paths[p, l, k] = (paths[p, l, k] + np.random.randint(-2, 3)) % self.model.M

    def train(self, t: int, data: list[dict]) -> None:
        train, valid = self.training_sets(t, data)
        self.pre_train(t)
        paths = self.sample_paths()
        generations = min(self.generations, self.nepochs)
        epochs = self.nepochs // generations
        lrs = [self.lr_start] * self.P
        best_loss, best_model, winner = math.inf, utils.get_model(self.model), 0
        log = self.log
        for g in range(generations):
            if max(lrs) < self.lr_min:
                break
            for p in range(self.P):
                if lrs[p] < self.lr_min:
                    continue
                print(f'| Generation {g + 1:3d} | Path {p + 1:3d}: {paths[p].tolist()} |')
                self.path = paths[p]
                self.model.train_path(t, paths[p])
                self.lr = lrs[p]  # fit() starts from self.lr
                self.log = _Tagged(log, generation=g + 1, path=p + 1)
                loss = self.fit(t, train, valid, epochs)
                lrs[p] = self.path_lr
                if loss < best_loss:
                    best_loss, best_model, winner = loss, utils.get_model(self.model), p
            utils.set_model_(self.model, best_model)
            print(f'| Winning path: {winner + 1:3d} | Best loss: {best_loss:.3f} |')
            self.mutate(paths, winner)
            lrs = [lrs[winner]] * self.P
        self.log, self.lr, self.path = log, self.lr_start, None
        self.model.best_path[t] = torch.from_numpy(paths[winner])
        print('Best path:', paths[winner].tolist())
        self.post_train(t, data)

    def post_train(self, t: int, data) -> None:
        self.model.freeze()


class _Tagged:
    """An epoch log whose records also carry fixed fields (the generation and the path being trained)."""

    def __init__(self, log: utils.EpochLog, **fields):
        self.log = log
        self.fields = fields

    def write(self, **record) -> None:
        self.log.write(**record, **self.fields)
