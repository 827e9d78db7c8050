"""Task-agnostic evaluation (run.py --task-agnostic): after task t, each test sample of a task u <= t classified
among all the classes of tasks 0..t, without its task label.

Every learned task's head gives its logits (Appr.agnostic_logits: one forward for every head where the heads share
one body, each task's own forward where the forward depends on the task). A rule scores each head's output per
sample; the task with the highest score is the inferred one (the first on a tie), and the class is the largest logit
of its head:
  maxprob   the largest softmax probability of the head (the default: the baseline of task inference, e.g. Kim et
            al., NeurIPS 2022)
  maxlogit  the largest logit: the heads' logits concatenated and the largest taken (FACIL's task-agnostic accuracy),
            which is the only rule for heads on one shared body, whose logits are comparable
  entropy   the lowest entropy of the head's softmax
  energy    the lowest energy, -logsumexp of the logits (Liu et al., NeurIPS 2020)
"""
import torch

RULES = {
    'maxprob': lambda z: z.softmax(1).amax(1),
    'maxlogit': lambda z: z.amax(1),
    'entropy': lambda z: (z.softmax(1) * z.log_softmax(1)).sum(1),  # minus the entropy: the highest wins
    'energy': lambda z: z.logsumexp(1),  # minus the energy
}
SHARED_BODY_RULE = 'maxlogit'


def infer(logits: list[torch.Tensor], rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(inferred task, class within that task's head) of each sample, from the logits (n, classes of task u) of
    heads 0..t. The class is the head's first largest logit, so that with maxlogit the pair is the first largest of
    the concatenated logits."""
    scores = torch.stack([RULES[rule](z.float()) for z in logits], 1)  # (n, tasks)
    task = scores.argmax(1)
    classes = torch.stack([z.argmax(1) for z in logits], 1)
    return task, classes.gather(1, task[:, None]).squeeze(1)


def counts(logits: list[torch.Tensor], u: int, y: torch.Tensor, rules) -> dict[str, tuple[int, int]]:
    """Per rule, of samples of task u with labels y: (how many get their task and class right, how many their
    task)."""
    out = {}
    for rule in rules:
        task, cls = infer(logits, rule)
        right_task = task == u
        out[rule] = (int((right_task & (cls == y)).sum()), int(right_task.sum()))
    return out
