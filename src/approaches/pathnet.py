"""PathNet (Fernando et al., 2017, https://arxiv.org/abs/1701.08734), as the original code's baseline
(src/approaches/pathnet.py), on a network from networks/*_pathnet.py.

Per task t, as the original's train() (pathnet.py:46-152), draw for draw, the tournament in fit() taking the place
of the shared patience loop:
  pre_train   modules on no earlier task's best path go back to their initial weights (lines 50-58);
  paths       P = 2 random paths, N distinct modules per layer (lines 61-72), drawn with numpy's global generator;
  generations each trains every path in turn for nepochs // generations epochs (line 31), only its modules that no
              earlier best path holds being trainable (line 86), with an optimizer built at the path's learning rate
              (line 89). After every epoch, the lowest validation loss so far over all paths marks the winner and
              its weights (lines 105-110); each path keeps its own best loss, patience and learning rate across
              generations, divided by lr_factor after lr_patience epochs without improvement, which applies from
              its next turn, and a path whose rate falls below lr_min ends its turn (lines 113-125). After each
              generation the winner's weights are restored (line 129) and the loser becomes the winner's path with
              each entry moved by a step in [-2, 2] (mod M) with probability 1 / (N * L), taking the winner's rate,
              a fresh patience and best loss (lines 134-144); a task ends after the last generation or when every
              path's rate is below lr_min (line 80);
  best path   the winner's path is stored in the network (line 150) and is frozen from then on: task t's logits go
              through it and head t only, so they never change.

One difference: with fewer --nepochs than --generations, nepochs generations of one epoch are run, where the original
trained nothing (nepochs // generations = 0).
"""
import math
from dataclasses import dataclass

import numpy as np
import torch

from approaches import _base
from plumbing import utils
from plumbing.hparams import param


class Appr(_base.Appr):
    """PathNet: a tournament of paths per task through shared modules; each task's best path is then frozen."""

    @dataclass
    class Hyper:
        generations: int = param(20, 'generations of the tournament per task, each training P = 2 paths for nepochs '
                                 '// generations epochs (fewer --nepochs than generations: nepochs generations of one '
                                 'epoch)', bounds='[1, inf)', grid='5, 10, 20, 50, 100, 200, "best was 20"',
                                 legacy=True)  # pathnet.py:26-29

    network_variant = 'pathnet'
    forward_per_task = True  # task t's best path
    graph_safe = False  # not measured with CUDA graphs; runs eagerly
    checkpoint_attrs = ('initial_model',)  # the best paths are a buffer of the network
    clipgrad = 1000  # pathnet.py:12
    P = 2  # paths trained per generation, "from paper Secs 2.4 and 2.5" (pathnet.py:24)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial_model = utils.get_model(self.model)
        self.path = None  # the path being trained, (L, N); None: each task's best path

    @torch.no_grad()
    def pre_train(self, t: int) -> None:
        taken = self.model.taken(t)
        for name, held in zip(self.model.layers, taken):
            for k, module in enumerate(getattr(self.model, name)):
                if k not in held:
                    for pname, p in module.named_parameters():
                        p.copy_(self.initial_model[f'{name}.{k}.{pname}'])

    def forward(self, t, x, training):
        # Only task t's head is computed: the others read their own paths (self.path: the one fit() is training,
        # None for the best ones). A dict keeps outputs[t].
        return {t: self.model(t, x, self.path)}, {}

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

    def fit(self, t: int, train: tuple, valid: tuple) -> float:
        """The tournament in place of the patience loop: stores the winning path in the network, restores its best
        weights and returns their validation loss."""
        loop = self.loop
        paths = self.sample_paths()
        generations = min(self.hp.generations, loop.nepochs)
        epochs = loop.nepochs // generations
        # Each path's learning rate, patience and best validation loss, carried across generations
        lrs, patience, best = [loop.lr] * self.P, [loop.lr_patience] * self.P, [math.inf] * self.P
        best_loss, best_model, winner = math.inf, utils.get_model(self.model), 0
        for g in range(generations):
            if max(lrs) < loop.lr_min:
                break
            for p in range(self.P):
                if lrs[p] < loop.lr_min:
                    continue
                print(f'| Generation {g + 1:3d} | Path {p + 1:3d}: {paths[p].tolist()} |')
                self.path = paths[p]
                self.model.train_path(t, paths[p])
                self.optimizer = self.make_optimizer(lrs[p])  # for the whole turn, whatever happens to lrs[p]
                for e in range(epochs):
                    on_train, on_valid, line, seconds = self.epoch(t, e, lrs[p], train, valid)
                    if on_valid['loss'] < best_loss:
                        best_loss, best_model, winner = on_valid['loss'], utils.get_model(self.model), p
                        line += ' B'
                    improved = on_valid['loss'] < best[p]
                    if improved:
                        best[p], patience[p] = on_valid['loss'], loop.lr_patience
                        line += ' *'
                    else:
                        patience[p] -= 1
                        if patience[p] <= 0:
                            lrs[p] /= loop.lr_factor
                            line += f' lr={lrs[p]:.1e}'
                            if lrs[p] >= loop.lr_min:
                                patience[p] = loop.lr_patience
                    print(line)
                    self.log_epoch(t, e, lrs[p], improved, seconds, on_train, on_valid, generation=g + 1, path=p + 1)
                    if lrs[p] < loop.lr_min:
                        break
            utils.set_model_(self.model, best_model)
            print(f'| Winning path: {winner + 1:3d} | Best loss: {best_loss:.3f} |')
            self.mutate(paths, winner)
            for p in range(self.P):
                if p != winner:
                    lrs[p], patience[p], best[p] = lrs[winner], loop.lr_patience, math.inf
        self.path = None
        self.model.best_path[t] = torch.from_numpy(paths[winner])
        print('Best path:', paths[winner].tolist())
        return best_loss

    def post_train(self, t: int, data) -> None:
        self.model.freeze()
