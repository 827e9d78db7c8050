"""The ways of running the shared loop's two repeated steps, a training step and an evaluation batch, faster than
plainly: mixed precision (autocast, with loss scaling in float16), torch.compile, the channels-last memory format and
CUDA graphs. The loop (approaches/_base.py) calls FastPath for each step and knows nothing of them; all are off by
default, since each changes the arithmetic or is not yet measured (docs/speed.md).

CUDA graphs: on a GPU a batch of 64 keeps the loop bound by the host: a HAT training step launches about 250 kernels,
each costing more host time than GPU time. A graph records one step's kernels once (per task, learning rate and data
set) and replays them with a single launch. The replay runs the same kernels on the same memory as the eager step,
with the same dropout draws (PyTorch's graph-safe Philox offsets), so the numbers should be the eager step's. That is
not yet measured on a GPU, so graphs are opt-in (run.py --cuda-graphs); bench/speed/gpu.py checks and times them.

A graph reads its data through addresses fixed at capture: the weights and gradients (updated in place by the
optimizer and by load_state_dict), the whole training or evaluation set (indexed inside the graph by a batch of
indices copied into a static buffer), and whatever else the approach reads (HAT's gate temperature tensor, its
mask_back, EWC's anchors...). So graphs are dropped whenever those may change: a new optimizer (new learning
rate), and the start and end of every task. Two rules follow for an approach (its hooks are not called again on a
replay): what a step takes from the batch's position is written into tensors in pre_batch (HAT's temperature), and
an approach whose step waits for the host sets graph_safe = False.
"""
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from plumbing.utils import UserError, first_line

WARMUP_CALLS = 2  # eager calls before capturing: cuBLAS and cuDNN set up their handles and workspaces lazily


@dataclass
class Speed:
    """The fast modes of a run (run.py's flags of the same names say what each does)."""
    amp: str | None = None  # 'bf16' or 'fp16'
    compile: str | None = None  # a torch.compile mode
    channels_last: bool = False
    cuda_graphs: bool = False


class FastPath:
    """Runs the loop's steps in the modes of a Speed: prepares the network, wraps forward passes in autocast, scales
    the loss, and replays full batches of one task as CUDA graphs."""

    def __init__(self, speed: Speed, model: torch.nn.Module, device: torch.device, graph_safe: bool):
        self.device = device
        self.amp_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(speed.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=speed.amp == 'fp16')  # fp16 gradients would underflow
        if speed.channels_last:
            model.to(memory_format=torch.channels_last)
        if speed.compile:
            model.compile(mode=speed.compile)
        # Autocast caches casts across a capture and fp16's loss scaling reads its scale on the host; torch.compile's
        # reduce-overhead mode has graphs of its own
        use_graphs = speed.cuda_graphs and graph_safe and not speed.amp and not speed.compile
        self.graphs = StepGraphs(device) if device.type == 'cuda' and use_graphs else None

    def autocast(self):
        """The context of a forward pass (mixed precision where asked)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """loss.backward(), scaled in float16; the gradients are unscaled after, so that hooks and clipping see the
        true ones (no-ops without fp16)."""
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step (skipped by the scaler where fp16 gradients overflowed)."""
        self.scaler.step(optimizer)
        self.scaler.update()

    def batches(self):
        """The context of a loop over batches (graphs need their own stream, and their warm-ups the same one)."""
        return self.graphs.stream_context() if self.graphs is not None else contextlib.nullcontext()

    def replays(self, task, batch: int, size: int) -> bool:
        """Whether a batch goes through a CUDA graph: graphs are on, the task is one int and the batch is full."""
        return self.graphs is not None and not torch.is_tensor(task) and batch == size

    def replay(self, key, step: Callable, index: torch.Tensor, keep: tuple = ()):
        """step(index) through the graph of key (see StepGraphs.run)."""
        return self.graphs.run(key, step, index, keep)

    def drop(self, keep=lambda key: False) -> None:
        """Forget the graphs (all, or those whose key keep() refuses): what they read is about to change."""
        if self.graphs is not None:
            self.graphs.drop(keep)

    def synchronize(self) -> None:
        """Wait for the device (for timings)."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


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
