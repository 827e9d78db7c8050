"""Joint training: before each task, re-initialise and train on the union of all tasks seen so far, each sample
through its own task's head (the upper reference of the paper's forgetting ratio): sgd-restart on the union."""
import torch

from approaches import sgd_restart


class Appr(sgd_restart.Appr):
    """Multitask learning on tasks 0..t, restarting from the initial weights at every task."""

    def training_sets(self, t: int, data: list[dict]):
        sets = []
        for split in ('train', 'valid'):
            parts = [data[u][split] for u in range(t + 1)]
            x = torch.cat([p['x'] for p in parts])
            y = torch.cat([p['y'] for p in parts])
            tasks = torch.cat([torch.full_like(p['y'], u) for u, p in enumerate(parts)])
            sets.append((x, y, tasks))
        return tuple(sets)

    def criterion(self, t, outputs, y, extras):
        if not torch.is_tensor(t):
            return super().criterion(t, outputs, y, extras)
        # Mean over the batch of each sample's loss under its own task's head (the original's criterion_train)
        loss = 0
        for u in torch.unique(t).tolist():
            idx = (t == u).nonzero().view(-1)
            loss = loss + self.ce(outputs[u][idx], y[idx]) * len(idx)
        return loss / y.size(0), {}

    def predict(self, t, outputs):
        if not torch.is_tensor(t):
            return super().predict(t, outputs)
        pred = torch.empty_like(t)
        for u in torch.unique(t).tolist():
            idx = t == u
            pred[idx] = outputs[u][idx].argmax(1)
        return pred
