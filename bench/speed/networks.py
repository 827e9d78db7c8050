"""One epoch of HAT on the later literature's networks at split_cifar100's real size, on the default device.

An epoch of split_cifar100's second task (after a first one, so HAT's gradient masks act) at its real size: 4,750
training images (500 a class less GPM's 5%) and a ninth of that to validate, as epoch.py's; synthetic CIFAR-shaped
data (epoch.py's), hat on alexnet_bn_hat and on resnet18_hat. Prints the seconds of the training pass and of the two
evaluations, as a Markdown table.

    python bench/speed/networks.py                  (on a GPU; on a CPU it takes minutes)
    python bench/speed/networks.py --ntrain 500     (a check of the script)
"""
import argparse
import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # started as a script: bench.common is found from the repository root
    sys.path.insert(0, str(ROOT))
from bench.speed import epoch  # noqa: E402  (puts src/ on the import path)

from plumbing import utils  # noqa: E402
import run  # noqa: E402

NETWORKS = ('alexnet_bn_hat', 'resnet18_hat')


def epoch_timing(ntrain: int) -> None:
    """One timed epoch of hat on split_cifar100's second task per network, after a warm-up epoch."""
    device = utils.choose_device(None)
    train, valid = epoch.task_data(ntrain, device)
    print('| network | device | training images | train s | evaluations s |\n|---|---|---|---|---|')
    for network in NETWORKS:
        args, experiment, module, net_module = run.parse_args(['--experiment', 'split_cifar100', '--approach', 'hat',
                                                               '--network', network])
        utils.seed_everything(0)
        taskcla = [(t, epoch.NCLASSES) for t in range(10)]
        appr = run.build_approach(module, net_module.Net(experiment.INPUTSIZE, taskcla).to(device), args, device)
        appr.post_train(0, None)  # task 0's attention: task 1's gradients are masked
        with contextlib.redirect_stdout(io.StringIO()):
            appr.epoch(1, 0, appr.loop.lr, (*train, 1), (*valid, 1))  # warm-up
            _, _, _, (train_s, eval_s) = appr.epoch(1, 1, appr.loop.lr, (*train, 1), (*valid, 1))
        print(f'| {network} | {device} | {ntrain} | {train_s:.2f} | {eval_s:.2f} |', flush=True)


def main() -> None:
    """Time the epochs."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--ntrain', type=utils.int_at_least(1), default=4750, help='training images (default: 4750)')
    epoch_timing(p.parse_args().ntrain)


if __name__ == '__main__':
    utils.run_cli(main)
