"""One module per architecture (`--network <module>`); files starting with '_' are shared parts, not choices.

The contract (checked for every module by tests/test_contracts.py, with networks/_contract.check; recipe and smallest
example in docs/extending.md):

A module exposes
- `Net(inputsize, taskcla)`: inputsize [C, H, W] and taskcla [(0, n0), (1, n1), ...] as the experiment's get()
  returns them; any other constructor argument has a default (run.py passes these two only);
- `VARIANT`: the kind of approach it serves, equal to their `Appr.network_variant`: None (plain: sgd, ewc, lwf,
  joint...), 'hat', 'lfl', 'progressive', 'pathnet', 'subnet' (wsn) or 'supsup'. run.py refuses a network of another
  variant in one line;
- optionally `EMB_INIT` ('hat' networks): how hat-test draws the task embeddings unless --emb-init says, 'uniform'
  for U(0, 2) or 'normal' for N(0, 1) (the default where absent); alexnet_hat's is 'uniform', as the original's.

A Net sets `self.taskcla = taskcla` before it creates anything that reads it (HatNet.add_gate makes one embedding
row per task), and keeps one head per task, `self.last[t]`, a ModuleList (sgd-frozen trains `last` alone). Its
parameters are created in a fixed order, which fixes their initial values for a seed: reordering the layers of an
existing network changes every number it gives (tests/test_networks.py and the parity tests pin them). forward() per
variant, with the methods its approaches call:
- None:          forward(x) -> [logits of head t, (B, n_t)] for every t. Any module (a copy of it is LwF's teacher).
- 'lfl':         forward(x) -> (logits as above, h), h the last hidden layer (B, F), not dropped out; features(x) -> h.
- 'hat':         forward(t, x, s=1) -> (logits as above, masks), masks = mask(t, s), one (1, units) gate per gated
                 layer; embeddings(), mask(t, s) and get_view_for(name, masks) (None for heads and embeddings): a
                 subclass of networks._hat.HatNet that calls add_gate() for each gated layer in forward order.
- 'progressive': forward(t, x) -> task t's logits (B, n_t) only; train_column(t), freeze(): a
                 _progressive.ProgressiveNet.
- 'pathnet':     forward(t, x, path=None) -> task t's logits (B, n_t) through path ((L, N) module indices, by default
                 best_path[t]); layers, M, N, best_path, taken(t), train_path(t, path), freeze(): a _pathnet.PathNet.
- 'subnet':      forward(x, masks) -> logits as None's, each layer of subnet_layers() ((name, layer) pairs, the heads
                 never among them, each layer with `scores`, a ParameterList of weight-shaped tensors) computing with
                 weight * masks[name]; a _subnet.SubnetForm before a plain network's class.
- 'supsup':      forward(t, x, masks) -> logits as None's through task t's batch norms, each layer of subnet_layers()
                 computing with its fixed weight (requires_grad False) * masks[name], its `scores` one tensor per
                 task; a _supsup.SupsupForm before a plain network's class.
A network that cannot compute a batch (alexnet_bn: one sample, which batch norm cannot normalise) raises
networks._contract.BatchError, naming no flag: the training loop turns it into a one-line error naming the flags.

The network an experiment runs by default is `<its DEFAULT_NETWORK>_<the approach's variant>` (alexnet_hat for hat on
cifar), or DEFAULT_NETWORK itself for a plain approach: a new architecture with a HAT form is two files, <name>.py and
<name>_hat.py.
"""
