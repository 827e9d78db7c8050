"""SGD: fine-tune the whole network on each task in turn, nothing done against forgetting (the lower baseline)."""
from approaches import _base


class Appr(_base.Appr):
    """Plain SGD fine-tuning: the shared loop with no hooks."""
