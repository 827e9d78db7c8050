"""GPM's AlexNet with batch norms and the ResNet-18s (reduced and standard), plain and HAT: parameter counts against
figures computed by hand, shapes, HAT's gate wiring and gradient-mask views through residual blocks, and HAT's
guarantee on them."""
import pytest
import torch

from approaches import hat, sgd
from networks import alexnet_bn, alexnet_bn_hat, resnet18, resnet18_hat, resnet18_reduced, resnet18_reduced_hat
from networks._contract import BatchError
from plumbing import utils
from fixtures import make_appr, make_tasks, run_main

TEN = [(t, 10) for t in range(10)]  # 10 tasks of 10 classes (CIFAR-100 split as GPM's)
MODULES = [alexnet_bn, alexnet_bn_hat, resnet18, resnet18_hat, resnet18_reduced, resnet18_reduced_hat]


@pytest.fixture(autouse=True)
def one_thread():
    """Each test on one thread: on a busy machine OpenMP's threads wait for one another, and training took 10 to 20
    times as long on two threads as on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(net):
    """The number of parameters."""
    return sum(p.numel() for p in net.parameters())


# Per-layer arithmetic, weights + batch-norm scale and shift (2 per channel); each head reads `width` features:
# ALEXNET_BN at 3x32x32: kernels 4, 3, 2; sizes 32 -> 29 -> 14 -> 12 -> 6 -> 5 -> 2, so fc1 reads 256*2*2 = 1024
#   conv1 64*3*4*4 = 3,072 + 128; conv2 128*64*3*3 = 73,728 + 256; conv3 256*128*2*2 = 131,072 + 512;
#   fc1 1024*2048 = 2,097,152 + 4,096; fc2 2048*2048 = 4,194,304 + 4,096: 6,508,416, no bias anywhere (GPM)
ALEXNET_BN_BODY = 6_508_416
# ResNet-18 at base width nf: stem 3*nf*9 + 2nf; stage k (width w = nf, 2nf, 4nf, 8nf, input width c):
#   first block 9cw + 9w^2 + 6w (two convs, two norms), plus where c != w a 1x1 shortcut cw + 2w; second 18w^2 + 4w.
# nf = 64: stem 1,728 + 128; layer1 2*(73,728 + 256) = 147,968; layer2 73,728 + 147,456 + 8,192 + 768 + 295,424 =
#   525,568; layer3 294,912 + 589,824 + 32,768 + 1,536 + 1,180,672 = 2,099,712; layer4 1,179,648 + 2,359,296 +
#   131,072 + 3,072 + 4,720,640 = 8,393,728: 11,168,832; with one 10-class head on 512 features (+5,130), the well
#   known 11,173,962 of the CIFAR ResNet-18 (github.com/kuangliu/pytorch-cifar)
RESNET18_BODY = 11_168_832
# nf = 20: stem 540 + 40; layer1 2*(7,200 + 80) = 14,560; layer2 7,200 + 14,400 + 800 + 240 + 28,960 = 51,600;
#   layer3 28,800 + 57,600 + 3,200 + 480 + 115,520 = 205,600; layer4 115,200 + 230,400 + 12,800 + 960 + 461,440 =
#   820,800: 1,093,140 (GEM's network with its single 100-class head on 160 features: 1,109,240)
RESNET18_REDUCED_BODY = 1_093_140
# Channels of the 20 convolutions (stem, 16 in blocks, 3 shortcuts): nf + 4nf + 5*2nf + 5*4nf + 5*8nf = 75nf
# = 4,800 at nf = 64, 1,500 at nf = 20; the HAT networks add one embedding row per task for each, and 9 more
# copies of every batch norm (2 parameters per channel) for 10 tasks


@pytest.mark.parametrize('module,expected', [
    (alexnet_bn, ALEXNET_BN_BODY + 10 * 2048 * 10),  # 6,713,216 (GPM's heads, without bias)
    (alexnet_bn_hat, ALEXNET_BN_BODY + 10 * 2048 * 10 + 10 * (64 + 128 + 256 + 2048 + 2048)),  # 6,758,656
    (resnet18, RESNET18_BODY + 10 * (512 * 10 + 10)),  # 11,220,132
    (resnet18_hat, RESNET18_BODY + 10 * (512 * 10 + 10) + 10 * 4800 + 9 * 2 * 4800),  # 11,354,532
    (resnet18_reduced, RESNET18_REDUCED_BODY + 10 * 640 * 10),  # 1,157,140: 2x2x160 features, no head bias (GPM)
    (resnet18_reduced_hat, RESNET18_REDUCED_BODY + 10 * 640 * 10 + 10 * 1500 + 9 * 2 * 1500)])  # 1,199,140
def test_parameter_counts(module, expected):
    assert count(module.Net([3, 32, 32], TEN)) == expected


def test_parameter_counts_with_one_head():
    assert count(resnet18.Net([3, 32, 32], [(0, 10)])) == 11_173_962
    assert count(resnet18_reduced.Net([3, 32, 32], [(0, 10)])) == RESNET18_REDUCED_BODY + 640 * 10


@pytest.mark.parametrize('module', MODULES)
@pytest.mark.parametrize('size', [32, 64])
def test_output_shapes(module, size):
    net = module.Net([3, size, size], TEN).eval()
    assert module.VARIANT == ('hat' if module.__name__.endswith('hat') else None)
    assert len(net.last) == 10
    out = net(torch.randn(2, 3, size, size)) if module.VARIANT is None else net(3, torch.randn(2, 3, size, size))[0]
    assert [o.shape for o in out] == [(2, 10)] * 10


def test_alexnet_bn_is_gpms():
    net = alexnet_bn.Net([3, 32, 32], TEN)
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters() if not name.startswith('last')}
    assert shapes == {'conv1.weight': (64, 3, 4, 4), 'bn1.weight': (64,), 'bn1.bias': (64,),
                      'conv2.weight': (128, 64, 3, 3), 'bn2.weight': (128,), 'bn2.bias': (128,),
                      'conv3.weight': (256, 128, 2, 2), 'bn3.weight': (256,), 'bn3.bias': (256,),
                      'fc1.weight': (2048, 1024), 'bn4.weight': (2048,), 'bn4.bias': (2048,),
                      'fc2.weight': (2048, 2048), 'bn5.weight': (2048,), 'bn5.bias': (2048,)}
    norms = [net.bn1, net.bn2, net.bn3, net.bn4, net.bn5]
    assert all(not n.track_running_stats and n.running_mean is None for n in norms)
    assert (net.drop1.p, net.drop2.p) == (0.2, 0.5)
    assert alexnet_bn.Net([3, 64, 64], TEN).conv1.kernel_size == (8, 8)  # alexnet.py's size // 8
    # Batch statistics in evaluation too: a sample's logits depend on its batch
    net.eval()
    x = torch.randn(4, 3, 32, 32)
    assert not torch.allclose(net(x)[0][:2], net(x[:2])[0])


BATCH_OF_ONE = ('alexnet_bn normalises every batch by its own statistics, which a batch of one sample does not have (a '
                'set one sample longer than a multiple of the batch size)')


@pytest.mark.parametrize('module', [alexnet_bn, alexnet_bn_hat])
def test_a_batch_of_one_is_a_neutral_error(module):
    """The network says why and names no flag (it knows none)..."""
    net = module.Net([3, 32, 32], TEN)
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(BatchError) as e:
        net(x) if module.VARIANT is None else net(0, x)
    assert str(e.value) == BATCH_OF_ONE


def test_a_batch_of_one_is_one_line_naming_the_flags(data_dir, tmp_path):
    """...and the loop, which knows the flags, names them: split_cifar100's tiny tasks train on 48 images, 47 + 1."""
    with pytest.raises(utils.UserError) as e:
        run_main(data_dir, tmp_path, '--experiment', 'split_cifar100', '--approach', 'sgd', '--nepochs', '1',
                 '--batch-size', '47')
    assert str(e.value) == BATCH_OF_ONE + '; choose another --batch-size or --eval-batch-size'


@pytest.mark.parametrize('module,nf', [(resnet18, 64), (resnet18_reduced, 20)])
def test_resnet_layout(module, nf):
    net = module.Net([3, 32, 32], TEN)
    convs = {name: m for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert len(convs) == 20 and all(c.bias is None for c in convs.values())
    assert [name for name in convs if 'shortcut' in name] == ['layer2.0.shortcut.0', 'layer3.0.shortcut.0',
                                                            'layer4.0.shortcut.0']
    assert [net.get_submodule(f'layer{i}.1.conv2').out_channels for i in (1, 2, 3, 4)] == [nf, 2 * nf, 4 * nf, 8 * nf]
    assert net.conv1.stride == (1, 1) and module.Net([3, 64, 64], TEN).conv1.stride == (2, 2)
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize('module,plain', [(alexnet_bn_hat, alexnet_bn), (resnet18_reduced_hat, resnet18_reduced)])
def test_hat_networks_start_as_the_plain_ones(module, plain):
    """The gates are created after the layers and heads, and batch norms draw nothing: the same initial weights."""
    torch.manual_seed(0)
    plain_net = dict(plain.Net([3, 32, 32], TEN).named_parameters())
    torch.manual_seed(0)
    hat_net = dict(module.Net([3, 32, 32], TEN).named_parameters())
    weights = [name for name, p in plain_net.items() if p.dim() > 1]  # convolutions, linear layers, heads
    assert len(weights) == (15 if plain is alexnet_bn else 30)
    for name in weights:
        assert torch.equal(plain_net[name], hat_net[name]), name


def test_hat_gates_and_their_masks():
    net = resnet18_reduced_hat.Net([3, 32, 32], TEN)
    expected = ['conv1'] + [f'layer{i}.{j}.{c}' for i in (1, 2, 3, 4) for j in (0, 1)
                            for c in ('conv1', 'conv2', 'shortcut.0') if c != 'shortcut.0' or (i > 1 and j == 0)]
    assert net.gated == expected and len(expected) == 20
    _, masks = net(4, torch.randn(2, 3, 32, 32), s=400)
    assert [m.shape for m in masks] == [(1, net.get_submodule(n).out_channels) for n in expected]
    assert masks[0].shape == (1, 20) and masks[-1].shape == (1, 160)
    assert net.elayer2_0_shortcut_0.weight.shape == (10, 40)  # the embedding of layer2.0.shortcut.0: dots made _
    _, masks = alexnet_bn_hat.Net([3, 32, 32], TEN)(0, torch.randn(2, 3, 32, 32), s=400)
    assert [m.shape for m in masks] == [(1, 64), (1, 128), (1, 256), (1, 2048), (1, 2048)]


def close(net, t, layers):
    """Shut task t's gates of `layers` (at s = 400)."""
    with torch.no_grad():
        for layer in layers:
            getattr(net, net.embedding_name(layer)).weight[t] = -6.0  # sigmoid(400 * -6) is 0 in float32


def test_declared_inputs_are_what_each_convolution_reads():
    """Closing the gates a convolution declares as its input's (several summed after a residual block) zeroes that
    input, which is not zero otherwise: the declarations behind the gradient masks are the forward pass's wiring."""
    x = torch.randn(2, 3, 32, 32)

    def inputs_seen(net, layers):
        """What each of `layers` reads in a forward pass of task 1."""
        seen = {}
        for layer in layers:
            hook = lambda module, args, layer=layer: seen.update({layer: args[0]})  # noqa: E731
            net.get_submodule(layer).register_forward_pre_hook(hook)
        net(1, x, s=400)
        return seen

    net = resnet18_reduced_hat.Net([3, 32, 32], TEN).eval()
    assert all(torch.any(h != 0) for h in inputs_seen(net, net.gated).values())
    for layer in net.gated[1:]:  # the stem reads the image
        closed = resnet18_reduced_hat.Net([3, 32, 32], TEN).eval()
        close(closed, 1, closed.gate_inputs[layer])
        assert torch.all(inputs_seen(closed, [layer])[layer] == 0), layer
    # The heads read the last block's output, relu(its conv2 + the previous block's output, conv2 + projection)
    net = resnet18_reduced_hat.Net([3, 32, 32], TEN).eval()
    close(net, 1, ['layer4.1.conv2', 'layer4.0.conv2', 'layer4.0.shortcut.0'])
    for o in net(1, x, s=400)[0]:
        assert torch.equal(o, torch.zeros_like(o))  # GPM's heads have no bias


def test_gradient_mask_views_resnet():
    net = resnet18_reduced_hat.Net([3, 32, 32], TEN)
    g = torch.Generator().manual_seed(0)
    masks = [torch.rand(1, e.weight.shape[1], generator=g) for e in net.embeddings()]
    m = {layer: mask[0] for layer, mask in zip(net.gated, masks)}
    view = lambda name: net.get_view_for(name, masks)  # noqa: E731

    assert torch.equal(view('conv1.weight')[5], torch.full((3, 3, 3), float(m['conv1'][5])))  # the image: out only
    assert torch.equal(view('layer1.0.conv1.weight')[3, 7], torch.full((3, 3), float(min(m['layer1.0.conv1'][3],
                                                                                           m['conv1'][7]))))
    # After an identity shortcut a unit is in use where either summand uses it
    for o, i in [(0, 0), (4, 11), (19, 19)]:
        used = max(m['layer1.0.conv2'][i], m['conv1'][i])
        assert view('layer1.1.conv1.weight')[o, i, 1, 2] == min(m['layer1.1.conv1'][o], used)
    # The projection: its own gate out, the block input's (layer1.1's output: three summands) in, 1x1
    projection = view('layer2.0.shortcut.0.weight')
    assert projection.shape == (40, 20, 1, 1)
    for o, i in [(0, 0), (39, 13), (21, 5)]:
        used = max(m['layer1.1.conv2'][i], m['layer1.0.conv2'][i], m['conv1'][i])
        assert projection[o, i, 0, 0] == min(m['layer2.0.shortcut.0'][o], used)
        assert view('layer2.0.conv1.weight')[o, i, 0, 0] == min(m['layer2.0.conv1'][o], used)
    # After a projection block: its conv2 and its projection
    used = torch.maximum(m['layer2.0.conv2'], m['layer2.0.shortcut.0'])
    assert torch.equal(view('layer2.1.conv1.weight')[6, :, 2, 0], torch.minimum(m['layer2.1.conv1'][6], used))
    assert torch.equal(view('layer4.1.conv2.weight')[100, :, 0, 0],
                       torch.minimum(m['layer4.1.conv2'][100], m['layer4.1.conv1']))
    # A task's own batch norms, the heads and the embeddings are never masked; everything else is
    for name, p in net.named_parameters():
        per_task = isinstance(net.get_submodule(name.rsplit('.', 1)[0]), torch.nn.BatchNorm2d)
        if per_task or name.startswith(('last', 'e')):
            assert view(name) is None, name
        else:
            assert view(name).shape == p.shape, name
    assert view('layer3.0.bn2.0.weight') is None and view('layer2.0.shortcut.1.4.bias') is None


def test_gradient_mask_views_alexnet_bn():
    net = alexnet_bn_hat.Net([3, 32, 32], TEN)
    g = torch.Generator().manual_seed(1)
    masks = [torch.rand(1, n, generator=g) for n in (64, 128, 256, 2048, 2048)]
    gc1, gc2, gc3, gfc1, gfc2 = (m[0] for m in masks)
    view = lambda name: net.get_view_for(name, masks)  # noqa: E731

    assert torch.equal(view('conv1.weight')[5], torch.full((3, 4, 4), float(gc1[5])))
    assert torch.equal(view('conv2.weight')[7, 9], torch.full((3, 3), float(min(gc2[7], gc1[9]))))
    # The shared batch norms' scale and shift: their layer's output units, as a bias
    for name, gate in [('bn1.weight', gc1), ('bn3.bias', gc3), ('bn4.weight', gfc1), ('bn5.bias', gfc2)]:
        assert torch.equal(view(name), gate)
    fc1 = view('fc1.weight')  # input feature c*2*2 + position: channel c of conv3 (flatten order)
    for j, c, pos in [(0, 0, 0), (11, 3, 2), (2047, 255, 3)]:
        assert fc1[j, c * 4 + pos] == min(gfc1[j], gc3[c])
    assert view('last.3.weight') is None and view('econv1.weight') is None


def train_two_tasks(net, appr_cls, forward):
    """Task 0's test logits after task 0 and after task 1 (eval mode, the whole test set as one batch), and the
    weights after task 0."""
    data = make_tasks((3, 32, 32), 2, n=32)
    appr = make_appr(appr_cls, net, nepochs=2, batch_size=8)
    logits = []
    for t in (0, 1):
        appr.train(t, data)
        net.eval()
        with torch.no_grad():
            logits.append(forward(data[0]['test']['x']))
        if t == 0:
            after_task0 = utils.get_model(net)
    return logits, after_task0


@pytest.mark.parametrize('module', [pytest.param(resnet18_reduced_hat, marks=pytest.mark.slow), alexnet_bn_hat])
def test_hat_keeps_task0_outputs_bitwise_with_binary_gates(module):
    """Where task 0's gates at s_max are exactly 0 or 1, HAT keeps its outputs to the last bit: the weights between
    claimed units are frozen (gradient multiplier 0), the others meet only inputs gated to 0 for task 0, and the
    normalisations are either task 0's own (the ResNet: another task's training never uses them, running statistics
    included) or shared ones whose claimed units keep their scale, shift and, on the same batch, their statistics
    (alexnet_bn: batch statistics in evaluation)."""
    utils.seed_everything(0)
    net = module.Net([3, 32, 32], [(0, 3), (1, 3)])
    with torch.no_grad():
        for emb in net.embeddings():
            emb.weight.copy_(6 * torch.randn_like(emb.weight).sign())  # sigmoid(400 * +-6): 0 or 1 exactly
    (before, after), after_task0 = train_two_tasks(net, hat.Appr, lambda x: net(0, x, s=400)[0][0])
    assert all(torch.all((m == 0) | (m == 1)) for m in net.mask(0, s=400))  # still binary: the premise held
    assert torch.equal(before, after)
    state = net.state_dict()
    moved = {k for k in state if not torch.equal(state[k], after_task0[k])}
    assert {'conv1.weight', 'fc2.weight' if module is alexnet_bn_hat else 'layer4.1.conv2.weight'} <= moved
    if module is resnet18_reduced_hat:  # task 0's batch norms (index 0 of each per-task list) stayed, task 1's moved
        task0_norms = [n for n, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and n.endswith('.0')]
        assert len(task0_norms) == 20 and not [k for k in moved if k.rsplit('.', 1)[0] in task0_norms]
        assert {'bn1.1.weight', 'bn1.1.running_mean', 'layer3.0.shortcut.1.1.running_var'} <= moved


@pytest.mark.slow
@pytest.mark.parametrize('module,plain', [(resnet18_reduced_hat, resnet18_reduced), (alexnet_bn_hat, alexnet_bn)])
def test_hat_keeps_task0_outputs_sgd_does_not(module, plain):
    """With HAT's own N(0, 1) embeddings a few gates sit between 0 and 1 at s_max, and the units they partly claim
    may move a little (measured on one thread: 1.1e-7 of plain SGD's change on the ResNet, whose batch norms are
    the task's own; 2.1e-3 on alexnet_bn, whose shared batch norms renormalise partly claimed units)."""
    utils.seed_everything(0)
    net = module.Net([3, 32, 32], [(0, 3), (1, 3)])
    (before, after), _ = train_two_tasks(net, hat.Appr, lambda x: net(0, x, s=400)[0][0])
    utils.seed_everything(0)
    plain_net = plain.Net([3, 32, 32], [(0, 3), (1, 3)])
    (plain_before, plain_after), _ = train_two_tasks(plain_net, sgd.Appr, lambda x: plain_net(x)[0])
    sgd_change = (plain_after - plain_before).abs().max()
    assert sgd_change > 1
    assert (after - before).abs().max() < 0.01 * sgd_change
