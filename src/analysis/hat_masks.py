"""HAT's mask analysis, from a HAT network (networks/_hat.py) and the monitoring log of hat-test or hat --monitor: the
units and weights each gated layer has in use after each task, and how the gates binarise over the epochs. Pure
computation: plot_results.py loads the files, rebuilds the network, checks that the two fit, and prints."""
import math

import numpy as np
import torch

from networks._hat import HatNet

NEAR_BINARY = 0.49  # a gate is binarised once |m - 0.5| exceeds this (within 0.01 of 0 or 1)


def units(net: HatNet) -> list[int]:
    """The number of units of each gated layer, in forward order."""
    return [e.weight.shape[1] for e in net.embeddings()]


def best_epoch(valid_loss: np.ndarray) -> int:
    """The epoch whose weights the training loop restores: the first with the lowest validation loss (it keeps a new
    best only when strictly lower); -1, the initial weights, when no epoch improved on infinity."""
    best, lowest = -1, math.inf
    for epoch, loss in enumerate(np.asarray(valid_loss, dtype=np.float64)):
        if loss < lowest:
            best, lowest = epoch, loss
    return best


def cumulative_after(logs: dict, t: int) -> list[np.ndarray]:
    """The cumulative mask after task t, per layer, flattened: the one logged before task t+1 where there is one;
    after the last task, max(the one before it, the task's mask at the restored epoch), as HAT accumulates it."""
    nlayers = len(logs['mask'][t])
    if t + 1 in logs['mask_pre']:
        return [np.asarray(logs['mask_pre'][t + 1][k], dtype=np.float32).ravel() for k in range(nlayers)]
    epoch = best_epoch(logs['valid_loss'].get(t, []))
    return [np.maximum(np.asarray(logs['mask_pre'][t][k]), logs['mask'][t][k][epoch]).astype(np.float32).ravel()
            for k in range(nlayers)]


def binarised(task_masks: dict) -> dict[int, float]:
    """epoch -> fraction of all layers' gate values within 0.01 of 0 or 1 (epoch -1: before training)."""
    epochs = sorted(task_masks[0])
    values = {e: np.concatenate([np.ravel(task_masks[k][e]) for k in sorted(task_masks)]) for e in epochs}
    return {e: float((np.abs(v - 0.5) > NEAR_BINARY).mean()) for e, v in values.items()}


def after_each_task(logs: dict) -> tuple[list[list[np.ndarray]], dict[int, dict[int, float]]]:
    """Per task the log holds: the cumulative mask after it (cumulative_after) and its gates' binarisation per epoch."""
    ntasks = len(logs['test_acc'])  # the log is saved once a task is tested
    return [cumulative_after(logs, t) for t in range(ntasks)], {t: binarised(logs['mask'][t]) for t in range(ntasks)}


def in_use(net: HatNet, cumulative: list[list[np.ndarray]], threshold: float) -> dict:
    """Fractions in use after each task (mask or weight's view > threshold): units, weights per layer; all weights."""
    unit_use = np.array([[float((m > threshold).mean()) for m in cum] for cum in cumulative]).T  # (layers, tasks)
    weight_use, weights_total = [], np.zeros(len(cumulative))
    with torch.no_grad():
        for layer in net.gated:
            per_task = []
            for t, cum in enumerate(cumulative):
                view = net.get_view_for(f'{layer}.weight', [torch.from_numpy(m) for m in cum])
                used = int((view > threshold).sum())
                per_task.append(used / view.numel())
                weights_total[t] += used
            weight_use.append(per_task)
    nweights = [net.get_submodule(layer).weight.numel() for layer in net.gated]
    return {'layers': list(net.gated), 'units': units(net), 'weights': nweights, 'unit_use': unit_use,
            'weight_use': np.array(weight_use), 'weight_use_total': weights_total / sum(nweights)}
