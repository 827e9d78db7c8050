"""CUDA graphs of the training step and evaluation batches (approaches/_fast.py).

Capturing needs a GPU: bench/speed/gpu.py checks there that whole runs give bitwise the same matrices with and without
graphs, and test_graphs_match_eager_on_a_gpu below does where one is present. On CPU, the loop's side of it runs with
an emulated graph that replays by calling the captured step again on its static index buffer: the routing of full
and partial batches, the keys, the warm-ups, dropping graphs at a new learning rate or task, and the accumulation of
replayed outputs that the next replay overwrites.
"""
import contextlib
import os

import numpy as np
import pytest
import torch

from approaches import _base, _fast
from plumbing import utils
from fixtures import run_small_cifar

os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')  # deterministic cuBLAS, if CUDA starts after this


class EmulatedGraph:
    """A graph that 'replays' by calling the step on its static index buffer, returning outputs it overwrites in
    place, as a real replay does."""

    captures = []

    def __init__(self, step, index, stream, keep):
        EmulatedGraph.captures.append(step)
        self.step = step
        self.index = index.clone()
        self.keep = keep
        self.outputs = None
        self.replays = 0

    def __call__(self, index):
        self.index.copy_(index)
        outputs = self.step(self.index)
        self.replays += 1
        if self.outputs is None:
            self.outputs = outputs
        elif isinstance(outputs, dict):  # eval steps: the same output tensors, overwritten
            for k, v in outputs.items():
                self.outputs[k].copy_(v)
        return self.outputs


class EmulatedGraphs(_fast.StepGraphs):
    """StepGraphs without a CUDA stream."""

    def __init__(self):
        self.graphs, self.calls, self.stream = {}, {}, None
        self.dropped = 0

    def stream_context(self):
        return contextlib.nullcontext()

    def drop(self, keep=lambda key: False):
        self.dropped += len(self.graphs) - sum(1 for k in self.graphs if keep(k))
        super().drop(keep)


def use_emulated_graphs(monkeypatch, graph_cls) -> list:
    """Every approach built from now on replays its steps through EmulatedGraphs whose graphs are graph_cls; returns
    the list the approaches are appended to."""
    made = []
    init = _base.Appr.__init__

    def with_graphs(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.fast.graphs = EmulatedGraphs()
        made.append(self)

    monkeypatch.setattr(_base.Appr, '__init__', with_graphs)
    monkeypatch.setattr(_fast, '_Graph', graph_cls)
    return made


@pytest.mark.slow
@pytest.mark.parametrize('approach', ['hat'])
def test_loop_through_emulated_graphs_is_bitwise_the_eager_loop(small_cifar, tmp_path, monkeypatch, approach):
    eager = run_small_cifar(small_cifar, tmp_path / 'eager', approach, ntasks=3)
    made = use_emulated_graphs(monkeypatch, EmulatedGraph)
    EmulatedGraph.captures = []
    replayed = run_small_cifar(small_cifar, tmp_path / 'graphs', approach, ntasks=3)
    assert np.array_equal(eager['acc'], replayed['acc']) and np.array_equal(eager['lss'], replayed['lss'])
    graphs = made[0].fast.graphs
    # Batch 8 on 18 or 36 training images: full batches went through graphs after the warm-ups, partial ones not
    # (a training and an evaluation capture per task at least); the lr drops (patience 1) and the tasks' ends dropped
    # graphs
    assert len(EmulatedGraph.captures) >= 2 * 3 and graphs.dropped >= len(EmulatedGraph.captures) - len(graphs.graphs)
    assert graphs.dropped > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU')
def test_graphs_match_eager_on_a_gpu(small_cifar, tmp_path):
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        runs = [run_small_cifar(small_cifar, tmp_path / name, 'hat', *flags, device='cuda')
                for name, flags in (('graphs', ['--cuda-graphs']), ('eager', []))]
    finally:
        torch.use_deterministic_algorithms(False)
    assert np.array_equal(runs[0]['acc'], runs[1]['acc']) and np.array_equal(runs[0]['lss'], runs[1]['lss'])


def test_a_failed_capture_is_one_clear_error(small_cifar, tmp_path, monkeypatch):
    def refuse(*args):
        raise RuntimeError('operation not permitted when stream is capturing\nmore detail')

    use_emulated_graphs(monkeypatch, refuse)
    with pytest.raises(utils.UserError, match=r'^CUDA graph capture failed \(operation not permitted when stream is '
                                              r'capturing\); run without --cuda-graphs'):
        run_small_cifar(small_cifar, tmp_path, 'sgd')
