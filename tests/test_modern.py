"""Every approach on each experiment of the later literature (split_cifar100, five_datasets, tinyimagenet), dry-run on
the tiny data with the fitting network: the experiment's own (GPM's AlexNet with batch norm, the reduced ResNet-18) in
the approach's variant, or, for the approaches whose networks have no form of it (LFL, progressive, PathNet), their
AlexNet-like network, which the default refuses in one line naming them."""
import numpy as np
import pytest

from plumbing import utils
from fixtures import assert_one_line_error, cli, run_main

MODERN = ['split_cifar100', 'five_datasets', 'tinyimagenet']
# The approaches whose variant exists of the AlexNet-like network only: its lateral connections (progressive), its
# modules (PathNet) and its unregularised last layer (LFL) are written for alexnet.py's five layers
ALEXNET_ONLY = {'lfl': 'alexnet_lfl', 'progressive': 'alexnet_progressive', 'pathnet': 'alexnet_pathnet'}
DEFAULT = {'split_cifar100': 'alexnet_bn', 'five_datasets': 'resnet18_reduced', 'tinyimagenet': 'resnet18_reduced'}


@pytest.mark.parametrize('experiment', MODERN)
@pytest.mark.parametrize('approach', utils.module_choices('approaches'))
def test_every_approach_dry_runs(data_dir, tmp_path, approach, experiment):
    network = ALEXNET_ONLY.get(approach)
    # Batches of 2 (the dry run keeps 6 samples a split) and one evaluation batch per set: the cheapest steps
    results = run_main(data_dir, tmp_path, '--experiment', experiment, '--approach', approach, '--dry-run',
                       '--batch-size', '2', '--eval-batch-size', '1000', *(['--network', network] if network else []))
    variant = utils.load_module('approaches', approach).Appr.network_variant
    assert results['args']['network'] == (network or DEFAULT[experiment] + (f'_{variant}' if variant else ''))
    ntasks = len(results['taskcla'])
    assert results['acc'].shape == (ntasks, ntasks) and np.all(np.isfinite(results['lss']))


@pytest.mark.parametrize('approach', sorted(ALEXNET_ONLY))
def test_a_network_without_the_approachs_form_is_one_line(tmp_path, approach):
    proc = cli('--experiment', 'five_datasets', '--approach', approach, '--results-dir', str(tmp_path))
    assert_one_line_error(proc, f'approach {approach} has no', 'resnet18_reduced', ALEXNET_ONLY[approach])
