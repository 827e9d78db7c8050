"""CUDA graphs of the shared loop's two repeated steps: a training step and an evaluation batch.

On a GPU a batch of 64 keeps the loop bound by the host: a HAT training step launches about 250 kernels, each costing
more host time than GPU time. A graph records one step's kernels once (per task, learning rate and data set) and
replays them with a single launch. The replay runs the same kernels on the same memory as the eager step, with the
same dropout draws (PyTorch's graph-safe Philox offsets), so the numbers should be the eager step's. That is not yet
measured on a GPU, so graphs are opt-in (run.py --cuda-graphs); bench/bench_gpu.py checks and times them.

A graph reads its data through addresses fixed at capture: the weights and gradients (updated in place by the
optimizer and by load_state_dict), the whole training or evaluation set (indexed inside the graph by a batch of
indices copied into a static buffer), and whatever else the approach reads (HAT's gate temperature tensor, its
mask_back, EWC's anchors...). So graphs are dropped whenever those may change: a new optimizer (new learning
rate), and the start and end of every task.
"""
import torch

from utils import UserError, first_line

WARMUP_CALLS = 2  # eager calls before capturing: cuBLAS and cuDNN set up their handles and workspaces lazily


class StepGraphs:
    """The graphs of one approach, keyed by what their capture fixed; all work runs on one side stream meanwhile."""

    def __init__(self, device: torch.device):
        self.stream = torch.cuda.Stream(device)
        self.graphs = {}  # key -> _Graph
        self.calls = {}  # key -> eager calls made so far

    def stream_context(self):
        """Run the enclosed work on the graphs' stream (captures need a side stream, and warm-ups the same one)."""
        return _OnStream(self.stream)

    def run(self, key, step, index: torch.Tensor, keep: tuple = ()):
        """step(index): eagerly for the first WARMUP_CALLS calls of a key, then through the graph captured for it.
        keep: tensors the step reads by address (held, so that their memory cannot be reused under the graph)."""
        graph = self.graphs.get(key)
        if graph is None:
            calls = self.calls.get(key, 0)
            if calls < WARMUP_CALLS:
                self.calls[key] = calls + 1
                return step(index)
            try:
                graph = self.graphs[key] = _Graph(step, index, self.stream, keep)
            except RuntimeError as e:  # an operation a capture does not allow (a host sync, an unsupported kernel)
                raise UserError(f'CUDA graph capture failed ({first_line(e)}); run without --cuda-graphs (--resume '
                                f'continues after the last finished task)') from None
        return graph(index)

    def drop(self, keep=lambda key: False) -> None:
        """Forget the graphs (all, or those whose key keep() refuses), and their warm-up counts."""
        self.graphs = {k: g for k, g in self.graphs.items() if keep(k)}
        self.calls = {k: c for k, c in self.calls.items() if keep(k)}


class _Graph:
    """step(index) captured on a static index buffer; calling it copies the index in and replays."""

    def __init__(self, step, index: torch.Tensor, stream: torch.cuda.Stream, keep: tuple):
        self.index = index.clone()
        self.keep = keep
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=stream):
            self.outputs = step(self.index)

    def __call__(self, index: torch.Tensor):
        self.index.copy_(index)
        self.graph.replay()
        return self.outputs


class _OnStream:
    """torch.cuda.stream(stream), ordered after the current stream's work on entry and before it on exit."""

    def __init__(self, stream: torch.cuda.Stream):
        self.stream = stream
        self.outer = self.context = None

    def __enter__(self):
        self.outer = torch.cuda.current_stream(self.stream.device)
        self.stream.wait_stream(self.outer)
        self.context = torch.cuda.stream(self.stream)
        self.context.__enter__()
        return self

    def __exit__(self, *exc):
        self.context.__exit__(*exc)
        self.outer.wait_stream(self.stream)
        return False
