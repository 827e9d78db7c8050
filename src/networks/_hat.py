"""What every HAT network shares: per-layer task embeddings, their gates, and the gradient-mask views."""
import torch


class HatNet(torch.nn.Module):
    """Base of the HAT networks. Subclasses set self.taskcla, create their layers and call add_gate() for each
    gated layer in forward order; their forward(t, x, s) multiplies each gated layer's units by mask(t, s)."""

    def __init__(self):
        super().__init__()
        self.gated = []  # the gated layers' names, in forward order

    @staticmethod
    def embedding_name(layer: str) -> str:
        """The attribute, hence the state_dict key, of the task embedding of `layer`: the original's 'e' + layer."""
        return 'e' + layer

    def add_gate(self, layer: str, units: int) -> None:
        """Create the task embedding of `layer`, one row of `units` values per task."""
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

    def get_view_for(self, name: str, masks: list[torch.Tensor]) -> torch.Tensor | None:
        """The mask of parameter `name`, broadcast to its shape; None for parameters HAT never masks (heads, gates).

        A weight gets min(mask of its output unit, mask of its input unit); the first layer's weight and every bias
        get the output unit's mask only. Where a convolution feeds a linear layer, each channel's mask is repeated
        over its spatial positions, in the order flatten() lays them out (channel-major).
        """
        layer, kind = name.rsplit('.', 1)
        if layer not in self.gated:
            return None
        k = self.gated.index(layer)
        post = masks[k].detach().view(-1)
        if kind == 'bias':
            return post
        weight = getattr(self, layer).weight
        trailing = (1,) * (weight.dim() - 2)
        post = post.view(-1, 1, *trailing).expand_as(weight)
        if k == 0:
            return post
        pre = masks[k - 1].detach().view(-1)
        pre = pre.repeat_interleave(weight.size(1) // pre.numel())  # conv -> linear: one value per (C, H, W) input
        return torch.minimum(post, pre.view(1, -1, *trailing).expand_as(weight))
