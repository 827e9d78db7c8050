"""One module per approach (`--approach <name>`, '-' for '_': sgd_restart.py is sgd-restart); files starting with '_'
are shared parts. The contract is written out in _base.py (recipe and smallest example in docs/extending.md;
tests/test_contracts.py checks every module). In brief, a module exposes `Appr`, a subclass of _base.Appr, with
- `Hyper`, a dataclass of its hyperparameters, each declared once with hparams.param (default, help, the paper's
  symbol, bounds; legacy=True for the original's --parameter a,b,... order): they give its flags;
- `network_variant`: None for a plain network, or the VARIANT of the networks it needs ('hat', 'lfl', 'progressive',
  'pathnet'; see networks/__init__.py); `clipgrad`, its gradient-norm clip; `checkpoint_attrs`, what it carries from
  one task to the next;
- the hooks it changes, called by the one training loop in _base.py: training_sets, pre_train, pre_batch, forward,
  criterion, predict, post_backward, post_step, post_epoch, post_train, after_tests (or fit, test for the rare
  approach that replaces a loop, as pathnet and random).
It is built from Hyper, a Loop and a Context, never from the command line: `ewc.Appr(net, ewc.Appr.Hyper(lamb=100),
Loop(nepochs=1))`.
"""
