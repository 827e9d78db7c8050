"""hat-test: HAT with the paper's monitoring (per-epoch logs and masks), uniform embeddings, single-task mode."""
import gzip
import json
import pickle

import numpy as np
import pytest
import torch

from approaches import hat_test
from networks import alexnet_hat, mlp_hat
from plumbing import utils
import run
from fixtures import make_appr


def run_hat_test(data_dir, tmp_path, *argv):
    results = run.main(['--experiment', 'mnist2', '--approach', 'hat-test', '--data-dir', str(data_dir),
                        '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'),
                        '--nepochs', '3', '--batch-size', '16', '--device', 'cpu', *argv])
    return results, tmp_path / 'logs' / 'mnist2_hat-test_0_masks.pkz'


def load(path):
    with gzip.open(path, 'rb') as f:
        return pickle.load(f)


def test_logs_load_back_with_every_epochs_masks(small_mnist, tmp_path):
    results, path = run_hat_test(small_mnist, tmp_path)
    logs = load(path)
    assert logs['task_name'] == {0: 'mnist-0-4', 1: 'mnist-5-9'}
    for t in (0, 1):
        np.testing.assert_array_equal(logs['test_acc'][t], results['acc'][t])
        np.testing.assert_array_equal(logs['test_loss'][t], results['lss'][t])
        for k in ('train_loss', 'train_acc', 'train_reg', 'valid_loss', 'valid_acc', 'valid_reg'):
            assert logs[k][t].shape == (3,)
        assert sorted(logs['mask'][t]) == [0, 1]  # the two gated layers of mlp_hat
        for layer in (0, 1):
            epochs = logs['mask'][t][layer]
            assert sorted(epochs) == [-1, 0, 1, 2]  # before training, then after each epoch
            assert all(m.shape == (1, 2000) and m.dtype == np.float32 for m in epochs.values())
            assert not np.array_equal(epochs[-1], epochs[2])  # the masks were learned
    # Cumulative masks: none before task 0; before task 1, task 0's mask with its best weights at s = smax
    assert all(np.all(m == 0) for m in logs['mask_pre'][0].values())
    lines = (tmp_path / 'logs' / 'mnist2_hat-test_0.jsonl').read_text().splitlines()
    records = [r for r in map(json.loads, lines) if r['task'] == 0]
    best_epoch = max(r['epoch'] for r in records if r['best']) - 1
    for layer in (0, 1):
        np.testing.assert_array_equal(logs['mask_pre'][1][layer], logs['mask'][0][layer][best_epoch])
    np.testing.assert_array_equal(logs['train_reg'][0], [r['train_reg'] for r in records])  # the same floats


def test_legacy_parameter_forms(small_mnist, tmp_path):
    custom = tmp_path / 'custom.pkz'
    results, _ = run_hat_test(small_mnist, tmp_path, '--parameter', f'0.5,200,{custom},1')
    assert (results['args']['lamb'], results['args']['smax'], results['args']['single_task']) == (0.5, 200, True)
    assert load(custom)['task_name'][1] == 'mnist-5-9'
    settings = hat_test.Appr.parse_parameter(['logs/x.pkz'])
    assert settings == {'monitor_path': utils.Path('logs/x.pkz')}
    with pytest.raises(ValueError, match='takes lamb,smax'):
        hat_test.Appr.parse_parameter(['1', '2', 'p', '1', '5'])


def test_single_task_trains_only_the_first_task(data_dir, tmp_path):
    # On data_dir: 3 epochs on its 200 images per task learn task 0 (small_mnist's 50 do not)
    results, path = run_hat_test(data_dir, tmp_path, '--single-task')
    logs = load(path)
    assert logs['train_loss'][0].shape == (3,) and logs['train_loss'][1].shape == (0,)
    assert logs['mask'][1][0].keys() == {-1}  # untrained: only the initial mask
    assert results['acc'][0, 0] > 0.6


def embeddings_after_init(net_cls, inputsize, tmp_path, **settings):
    torch.manual_seed(0)
    net = net_cls.Net(inputsize, [(0, 2), (1, 2)])
    appr = make_appr(hat_test.Appr, net, logs_dir=tmp_path, **settings)
    return appr.hp.emb_init, torch.cat([e.weight.flatten() for e in net.embeddings()])


def test_embedding_initialisation(tmp_path):
    init, conv = embeddings_after_init(alexnet_hat, [3, 32, 32], tmp_path)
    assert init == 'uniform'  # as saved with the results
    assert conv.min() >= 0 and conv.max() <= 2 and conv.std() < 0.7  # U(0, 2), the original's alexnet_hat_test
    init, mlp = embeddings_after_init(mlp_hat, [1, 28, 28], tmp_path)
    assert init == 'normal'
    assert mlp.min() < -1 and mlp.max() > 1  # N(0, 1), as the original's hat-test on the MNIST experiments
    _, forced = embeddings_after_init(mlp_hat, [1, 28, 28], tmp_path, emb_init='uniform')
    assert forced.min() >= 0 and forced.max() <= 2
