"""What run.py --task-agnostic costs: the tests after a task with and without the task-agnostic ones, on CIFAR shapes
(run.py's default networks for --experiment cifar: hat on alexnet_hat, sgd on alexnet), measured side by side.

After task t, a run tests each of tasks 0..t once, told the task (the task-aware matrix's row). With the flag it then
tests each of them again without the label: hat, whose forward depends on the task, runs each learned task's forward
on every test set (t + 1 forwards per set, the four rules scored from them); sgd, whose heads share one body, one
forward per set. Synthetic data of the shapes only (the timings do not depend on what is learned).

    python bench/speed/agnostic.py           (after task 9 of 10, 64 test images per task, 2 repetitions: a minute here)
    python bench/speed/agnostic.py --after 4 --ntest 200 --reps 5 --device cuda

Printed per approach: the median seconds of the task-aware tests alone and with the task-agnostic ones, and their
ratio. The machine may be shared: repetitions are interleaved, compare the ratios rather than the seconds.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # started as a script: bench.common is found from the repository root
    sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

common.add_src_path()

import torch  # noqa: E402

from approaches import _agnostic, hat, sgd  # noqa: E402
from approaches._base import Context, Loop  # noqa: E402
from networks import alexnet, alexnet_hat  # noqa: E402
from plumbing import utils  # noqa: E402

NTASKS, NCLA = 10, 10  # cifar's tasks, at CIFAR-100's 10 classes each (a bound on CIFAR-10's 2)


def build(which: str, device: torch.device):
    taskcla = [(t, NCLA) for t in range(NTASKS)]
    if which == 'hat':
        return hat.Appr(alexnet_hat.Net([3, 32, 32], taskcla).to(device), loop=Loop(), context=Context(device=device))
    return sgd.Appr(alexnet.Net([3, 32, 32], taskcla).to(device), loop=Loop(), context=Context(device=device))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--after', type=utils.int_at_least(0), default=NTASKS - 1,
                   help=f'the tests after this task, 0..{NTASKS - 1} (default: the last)')
    p.add_argument('--ntest', type=utils.int_at_least(1), default=64, help='test images per task (default: 64)')
    p.add_argument('--reps', type=utils.int_at_least(1), default=2, help='repetitions (default: 2)')
    p.add_argument('--device', default='cpu')
    args = p.parse_args()
    if args.after >= NTASKS:
        raise utils.UserError(f'--after {args.after}: cifar has tasks 0..{NTASKS - 1}')
    device = torch.device(args.device)
    report = common.Report()
    common.environment(report, device)
    torch.manual_seed(0)
    t = args.after
    tests = [(torch.randn(args.ntest, 3, 32, 32, device=device), torch.randint(0, NCLA, (args.ntest,), device=device))
             for _ in range(t + 1)]
    apprs = {which: build(which, device) for which in ('hat', 'sgd')}
    times = {(which, flag): [] for which in apprs for flag in (False, True)}
    for _ in range(args.reps):
        for which, appr in apprs.items():
            rules = list(_agnostic.RULES) if appr.forward_per_task else [_agnostic.SHARED_BODY_RULE]
            for flag in (False, True):
                common.sync(device)
                clock = time.perf_counter()
                for u, (x, y) in enumerate(tests):
                    appr.test(u, x, y)
                if flag:
                    with utils.random_state_kept():
                        for u, (x, y) in enumerate(tests):
                            appr.test_agnostic(t, u, x, y, rules)
                common.sync(device)
                times[which, flag].append(time.perf_counter() - clock)
    report(f'The tests after task {t} of cifar ({t + 1} test sets of {args.ntest} images), median of {args.reps}:')
    for which in apprs:
        aware, both = statistics.median(times[which, False]), statistics.median(times[which, True])
        report(f'  {which:4s}: task-aware {aware:.3f} s, with the task-agnostic tests {both:.3f} s: '
               f'{both / aware:.2f}x')


if __name__ == '__main__':
    utils.run_cli(main)
