"""What every HAT network shares: per-layer task embeddings, their gates, and the gradient-mask views.

The views are generic: each gated layer declares which gated layers feed its input (by default the previous one, a
chain as in the original's networks; several where its input is a sum, as after a residual block) and which other
modules carry its output units (a shared normalisation), and get_view_for() builds every parameter's view, of a
convolution, a linear layer, a shortcut projection or a normalisation, by one rule from those declarations.
"""
from collections.abc import Sequence
from functools import reduce

import torch


class HatNet(torch.nn.Module):
    """Base of the HAT networks. Subclasses set self.taskcla, create their layers and call add_gate() for each
    gated layer in forward order; their forward(t, x, s) multiplies each gated layer's units by mask(t, s)."""

    def __init__(self):
        super().__init__()
        self.gated = []  # the gated layers' names, in forward order
        self.gate_inputs = {}  # gated layer -> the gated layers whose outputs, summed, are its input
        self.gate_of = {}  # module name -> the gated layer whose output units its parameters carry

    @staticmethod
    def embedding_name(layer: str) -> str:
        """The attribute, hence state_dict key, of `layer`'s task embedding: the original's 'e' + layer, dots as _."""
        return 'e' + layer.replace('.', '_')  # a submodule's name: attribute names cannot hold dots

    def add_gate(self, layer: str, units: int, inputs: Sequence[str] | None = None, norms: Sequence[str] = ()) -> None:
        """Create the task embedding of module `layer`, one row of `units` values per task, and declare its wiring."""
        # inputs: the gated layers whose outputs, summed, are its input; None: the previously gated one (a chain),
        # none for the first; empty: the raw input. norms: modules whose parameters carry its output units alone
        # (shared normalisations), masked by its gate as a bias is
        self.gate_inputs[layer] = tuple(self.gated[-1:] if inputs is None else inputs)
        self.gate_of.update(dict.fromkeys((layer, *norms), layer))
        self.gated.append(layer)
        setattr(self, self.embedding_name(layer), torch.nn.Embedding(len(self.taskcla), units))

    def embeddings(self) -> list[torch.nn.Embedding]:
        """The task embeddings, one per gated layer, in forward order."""
        return [getattr(self, self.embedding_name(layer)) for layer in self.gated]

    def mask(self, t: int, s: float = 1) -> list[torch.Tensor]:
        """Gates sigmoid(s * e_l[t]) of every gated layer, each of shape (1, units)."""
        # Row t sliced out, the values and gradients of emb(tensor([t])) without building that index: on a GPU its
        # copy from the host would wait for the GPU at every forward pass
        return [torch.sigmoid(s * emb.weight[t:t + 1]) for emb in self.embeddings()]

    def input_mask(self, layer: str, masks: list[torch.Tensor]) -> torch.Tensor | None:
        """The mask of the units gated layer `layer` reads, flattened; None where it reads the raw input."""
        # A unit of a sum of gated outputs is in use where any summand's gate uses it
        summands = [masks[self.gated.index(source)].detach().view(-1) for source in self.gate_inputs[layer]]
        return reduce(torch.maximum, summands) if summands else None

    def get_view_for(self, name: str, masks: list[torch.Tensor]) -> torch.Tensor | None:
        """The mask of parameter `name`, broadcast to its shape; None for parameters HAT never masks (heads, gates,
        per-task normalisations).

        A weight gets min(mask of its output unit, mask of its input unit); a weight reading the raw input, and every
        one-value-per-unit parameter (a bias, a normalisation's scale or shift), the output unit's mask only. Where a
        convolution feeds a linear layer, each channel's mask is repeated over its spatial positions, in the order
        flatten() lays them out (channel-major).
        """
        module, _ = name.rsplit('.', 1)
        layer = self.gate_of.get(module)
        if layer is None:
            return None
        post = masks[self.gated.index(layer)].detach().view(-1)
        param = self.get_parameter(name)
        if param.dim() == 1:
            return post
        trailing = (1,) * (param.dim() - 2)
        post = post.view(-1, 1, *trailing).expand_as(param)
        pre = self.input_mask(layer, masks)
        if pre is None:
            return post
        pre = pre.repeat_interleave(param.size(1) // pre.numel())  # conv -> linear: one value per (C, H, W) input
        return torch.minimum(post, pre.view(1, -1, *trailing).expand_as(param))
