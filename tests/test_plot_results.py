"""plot_results.py: every figure's and table's numbers checked by hand on small synthetic result files, the masks
analysis on a real hat-test log, images of the requested pixel size, and one-line errors for bad input."""
import argparse
import csv
import gzip
import json
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from analysis import hat_masks, results
from approaches import _base
from networks import alexnet_hat
import plot_results
from plumbing import utils
import run
from conftest import ROOT
from fixtures import HAT, HAT_CURVE, JOINT, RANDOM, T_975_4DOF, write_result  # the 3-task experiment, its rho


def write_runs(folder, experiment='exp', seeds=(0,), shift=0.0, approaches=None):
    """The three matrices per seed; hat's acc[2, 2] gains shift * seed, so that seeds differ."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        hat = np.array(HAT)
        hat[2, 2] += shift * seed
        for name, acc in (('random', RANDOM), ('joint', JOINT), ('hat', hat)):
            if approaches is None or name in approaches:
                np.savetxt(folder / f'{experiment}_{name}_{seed}.txt', np.array(acc), '%.4f')
    return folder


def figure_argv(tmp_path, name='fig.png', size='5,3', dpi='40'):
    return ['--output', str(tmp_path / name), '--size', size, '--dpi', dpi]


def assert_image(path, width_px, height_px):
    image = imread(path)
    assert image.shape[:2] == (height_px, width_px)
    assert image[..., :3].std() > 0  # something was drawn


########################################################################################################################
# Command line


def test_seeds():
    argv = ['--experiment', 'e', '--approaches', 'hat', '--output', 'x.png', '--seeds']
    assert plot_results.parse_args([*argv, '0-9']).seeds == list(range(10))
    assert utils.parse_seeds('0,1,2') == [0, 1, 2] and utils.parse_seeds('3') == [3]
    assert utils.parse_seeds('0-2,7,9-10') == [0, 1, 2, 7, 9, 10]
    for bad in ('a', '5-2', '1,,2'):
        with pytest.raises(utils.UserError, match='argument --seeds'):
            plot_results.parse_args([*argv, bad])


########################################################################################################################
# Subcommands


def test_forgetting_figure(tmp_path, capsys):
    folder = write_runs(tmp_path / 'res', seeds=range(5), shift=0.01)
    # without a subcommand, as the original
    data = plot_results.main(['--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds', '0-4',
                              '--folders', str(folder), *figure_argv(tmp_path)])
    assert list(data['curves']) == ['hat'] and data['ntasks'] == 3
    curve = data['curves']['hat']
    # seed s adds 0.01 * s to acc[2, 2], so rho[2, 2] by 0.01 * s / 0.5 and the 3-task average by 0.02 * s / 3
    expected = np.array(HAT_CURVE)[None, :] + np.outer(np.arange(5), [0, 0, 0.02 / 3])
    np.testing.assert_allclose(curve['per_seed'], expected, atol=1e-12)
    np.testing.assert_allclose(curve['mean'], [0, 0.0625, -37 / 72 + 0.04 / 3], atol=1e-12)
    # offsets (-2..2) * 0.02/3 have std (ddof=0) sqrt(2) * 0.02/3
    np.testing.assert_allclose(curve['ci'], [0, 0, T_975_4DOF * math.sqrt(2) * 0.02 / 3 / math.sqrt(5)], atol=1e-12)
    out = capsys.readouterr().out
    assert 'hat                0.000 (0.000)   0.062 (0.000)  -0.501 (0.012)  -->  -0.146' in out
    assert_image(tmp_path / 'fig.png', 200, 120)


def test_forgetting_over_two_folders(tmp_path):
    a, b = write_runs(tmp_path / 'a'), write_runs(tmp_path / 'b')
    data = plot_results.main(['forgetting', '--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds',
                              '0', '--folders', f'{a},{b}', *figure_argv(tmp_path, 'fig.pdf')])
    assert list(data['curves']) == [f'{a}: hat', f'{b}: hat']
    assert math.isnan(data['curves'][f'{a}: hat']['ci'][0])  # one seed: no interval
    assert (tmp_path / 'fig.pdf').read_bytes().startswith(b'%PDF')
    # The original's jitter, 0.08 * 2 * (i / curves - 0.5): -0.08 and 0 for two curves; the zero line spans them
    fig = plot_results.plot_forgetting(data, argparse.Namespace(size=(5, 3), dpi=40))
    first, second = (c.lines[0].get_xdata() for c in fig.axes[0].containers)  # each errorbar's data line
    np.testing.assert_allclose(first, [0.92, 1.92, 2.92])
    np.testing.assert_allclose(second, [1, 2, 3])
    np.testing.assert_allclose(fig.axes[0].lines[-1].get_xdata(), [0.92, 3.08])
    plot_results.plt.close(fig)
    short = tmp_path / 'short'
    short.mkdir()
    for name, acc in (('random', RANDOM), ('joint', JOINT), ('hat', HAT)):
        np.savetxt(short / f'exp_{name}_0.txt', np.array(acc)[:2, :2], '%.4f')
    with pytest.raises(utils.UserError, match=f'different numbers of tasks: {a}: 3, {short}: 2'):
        plot_results.forgetting_data([a, short], 'exp', ['random', 'joint', 'hat'], [0])


def test_table_by_hand(tmp_path, capsys):
    folder = write_runs(tmp_path / 'res', seeds=range(5), shift=0.03)
    data = plot_results.main(['table', '--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds', '0-4',
                              '--folders', str(folder), '--csv', str(tmp_path / 'out' / 't.csv'),
                              '--markdown', str(tmp_path / 'out' / 't.md')])
    rows = {r['approach']: r for r in data['rows']}
    hat = rows['hat']
    assert hat['seeds'] == 5
    # seed s: acc[2, 2] = 0.5 + 0.03 s, so the final average accuracy (0.6 + 0.45 + 0.5 + 0.03 s) / 3 in %:
    # 51.667 + s; its mean 53.667, its offsets -2..2 (std sqrt(2), ddof=0)
    assert hat['acc_final'] == pytest.approx((155 / 3 + 2, T_975_4DOF * math.sqrt(2) / math.sqrt(5)))
    assert hat['acc_final'][1] == pytest.approx(1.7559781, abs=1e-6)
    assert hat['acc_1'] == pytest.approx((90, 0)) and hat['acc_2'] == pytest.approx((82.5, 0))
    assert hat['bwt'] == pytest.approx((-27.5, 0))  # acc[2, 2] is not in BWT or forgetting
    assert hat['forgetting'] == pytest.approx((30, 0))
    # rho[2, 2] = 2 * 0.03 s - 0.5, so the final rho is -37/72 + 0.02 s
    assert hat['rho'] == pytest.approx((-37 / 72 + 0.04, T_975_4DOF * math.sqrt(2) * 0.02 / math.sqrt(5)))
    assert rows['joint']['rho'] == pytest.approx((0, 0))  # the upper reference, by construction

    with open(tmp_path / 'out' / 't.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert [r['approach'] for r in table] == ['random', 'joint', 'hat']
    assert list(table[0]) == ['approach', 'seeds', 'acc_1', 'acc_1_ci95', 'acc_2', 'acc_2_ci95', 'acc_3',
                              'acc_3_ci95', 'acc_final', 'acc_final_ci95', 'bwt', 'bwt_ci95', 'forgetting',
                              'forgetting_ci95', 'rho', 'rho_ci95']
    assert table[2]['acc_final'] == '53.666667' and table[2]['acc_final_ci95'] == '1.755978'
    assert table[2]['bwt'] == '-27.500000' and table[2]['forgetting'] == '30.000000'
    assert table[2]['rho'] == f'{-37 / 72 + 0.04:.6f}'
    markdown = (tmp_path / 'out' / 't.md').read_text().splitlines()
    assert markdown[0] == '| approach | seeds | acc 1 | acc 2 | acc 3 | final acc | BWT | forgetting | rho |'
    assert markdown[1] == '|---|---|---|---|---|---|---|---|---|'
    assert markdown[4] == ('| hat | 5 | 90.00 ± 0.00 | 82.50 ± 0.00 | 53.67 ± 1.76 | 53.67 ± 1.76 | -27.50 ± 0.00 | '
                           '30.00 ± 0.00 | -0.474 ± 0.035 |')
    assert 'hat ' in capsys.readouterr().out


def test_table_without_references_says_na(tmp_path):
    folder = write_runs(tmp_path / 'res', approaches=('hat',))
    plot_results.main(['table', '--experiment', 'exp', '--approaches', 'hat', '--seeds', '0', '--folders',
                       str(folder), '--csv', str(tmp_path / 't.csv'), '--markdown', str(tmp_path / 't.md')])
    row = next(csv.DictReader((tmp_path / 't.csv').read_text().splitlines()))
    assert row['rho'] == row['rho_ci95'] == row['bwt_ci95'] == 'n/a'  # no references; one seed: no interval
    assert row['bwt'] == '-27.500000'
    assert (tmp_path / 't.md').read_text().splitlines()[2].endswith('| -27.50 ± n/a | 30.00 ± n/a | n/a |')


def test_one_seed_printouts(tmp_path, capsys):
    """One seed: values alone on screen (no '± n/a', no '(  nan)'), under a header saying so; files as before."""
    folder = write_runs(tmp_path / 'res')
    plot_results.main(['table', '--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds', '0',
                       '--folders', str(folder)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ['approach', 'seeds', 'acc', '1', 'acc', '2', 'acc', '3', 'final', 'acc', 'BWT',
                              'forgetting', 'rho']
    assert out[3].split() == ['hat', '1', '90.00', '82.50', '51.67', '51.67', '-27.50', '30.00', '-0.514']
    assert out[4] == ('Accuracies, BWT and forgetting in %; mean ± 95% half-width over the seeds; one seed: its value '
                      'alone (no interval)')
    assert 'n/a' not in '\n'.join(out)
    plot_results.main(['--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds', '0', '--folders',
                       str(folder), *figure_argv(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert out[1:4] == ['Forgetting ratio rho after k tasks (averaged over the tasks seen): one seed, no interval',
                        'k                      1       2       3  -->    mean',
                        'hat                0.000   0.062  -0.514  -->  -0.150']
    assert 'nan' not in '\n'.join(out)


def test_forgetting_printout_has_a_header(tmp_path, capsys):
    folder = write_runs(tmp_path / 'res', seeds=range(5), shift=0.01)
    plot_results.main(['--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds', '0-4', '--folders',
                       str(folder), *figure_argv(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert out[1:4] == ['Forgetting ratio rho after k tasks (averaged over the tasks seen): mean (95% half-width) '
                        'over 5 seeds',
                        'k                      1               2               3          -->    mean',
                        'hat                0.000 (0.000)   0.062 (0.000)  -0.501 (0.012)  -->  -0.146']


def test_every_file_written_is_said(tmp_path, capsys):
    folder = write_runs(tmp_path / 'res', seeds=range(3), shift=0.01)
    out_files = [tmp_path / 'out' / name for name in ('t.csv', 't.md', 't.tex')]
    plot_results.main(['table', '--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds', '0-2',
                       '--folders', str(folder), '--csv', str(out_files[0]), '--markdown', str(out_files[1]),
                       '--latex', str(out_files[2])])
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [f'saved {path}' for path in out_files]
    assert all(path.is_file() for path in out_files)
    plot_results.main(['--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds', '0-2', '--folders',
                       str(folder), *figure_argv(tmp_path)])
    assert capsys.readouterr().out.splitlines()[-1] == f"saved {tmp_path / 'fig.png'}"


def test_missing_seeds_say_which_there_are(tmp_path):
    folder = write_runs(tmp_path / 'res', seeds=range(3))
    (folder / 'exp_hat_2.txt').unlink()
    (folder / 'exp_hat_7_dryrun.txt').write_text('')  # not a seed's result
    argv = ['--experiment', 'exp', '--approaches', 'random,joint,hat', '--folders', str(folder),
            '--output', str(tmp_path / 'f.png')]
    # the default --seeds 0-9: random stops at 3; only 0 and 1 have every approach
    with pytest.raises(utils.UserError) as e:
        plot_results.main(argv)
    assert str(e.value) == (f"missing result file {folder / 'exp_random_3.txt'} (--seeds 0-9); {folder} has "
                            f"exp_random for seeds 0-2, and all of random,joint,hat for seeds 0-1: pass --seeds 0-1")
    with pytest.raises(utils.UserError) as e:
        plot_results.main([*argv, '--seeds', '0-2'])
    assert str(e.value).endswith(f'{folder} has exp_hat for seeds 0-1: pass --seeds 0-1')
    with pytest.raises(utils.UserError) as e:
        plot_results.main(['table', '--experiment', 'other', '--approaches', 'hat', '--folders', str(folder)])
    assert str(e.value).endswith(f'{folder} has no other_hat_<seed>.txt at all (check --folders, --experiment and '
                                 f'--approaches)')
    assert plot_results.seed_ranges([0, 1, 2, 5, 7, 8]) == '0-2,5,7-8' and plot_results.seed_ranges([4]) == '4'
    assert utils.parse_seeds(plot_results.seed_ranges([0, 1, 2, 5, 7, 8])) == [0, 1, 2, 5, 7, 8]


def test_figures_have_titles(tmp_path):
    """Every figure says what it shows: the forgetting figure its experiment and seeds."""
    folder = write_runs(tmp_path / 'res', seeds=range(3), shift=0.01)
    size = argparse.Namespace(size=(5, 3), dpi=40)
    data = plot_results.forgetting_data([folder], 'exp', ['random', 'joint', 'hat'], [0, 1, 2])
    fig = plot_results.plot_forgetting(data, size)
    assert fig.axes[0].get_title() == 'exp: forgetting ratio rho (mean and 95% interval over seeds 0-2)'
    plot_results.plt.close(fig)
    data = plot_results.forgetting_data([folder], 'exp', ['random', 'joint', 'hat'], [1])
    fig = plot_results.plot_forgetting(data, size)
    assert fig.axes[0].get_title() == 'exp: forgetting ratio rho (seed 1)'
    plot_results.plt.close(fig)


# Two experiments to compare approaches on: per seed s, each approach's matrix moves by 0.03 (exp) or 0.02 (two_tasks)
# times OFFSETS[approach][s] at one entry, so that paired differences vary over the seeds (constant ones would make the
# t statistic infinite). An offset o at the last row moves the final accuracy, in %, by o; at column 0 of the last row
# (hat), exp's BWT by 1.5 o and two_tasks' by 2 o. Offsets 1..5 in any order: mean 3, interval 1.7559781 (as above).
OFFSETS = {'random': [3, 5, 2, 4, 1], 'joint': [0] * 5, 'sgd': [4, 1, 5, 2, 3], 'hat': [1, 2, 3, 4, 5]}
TWO_TASKS = {'random': [[0.5, 0], [0.3, 0.2]], 'joint': [[0.9, 0], [0.9, 0.7]], 'sgd': [[0.9, 0], [0.6, 0.8]],
             'hat': [[0.9, 0], [0.95, 0.7]]}


def write_comparison(folder, seeds=range(5)):
    """exp: the fixtures' matrices (sgd: HAT's), 0.03 * offset added at hat's acc[2, 0] and the others' acc[2, 2]:
        random  final acc 15 + o -> 18.00 ± 1.76   BWT -25
        joint   71.67 ± 0.00                       BWT -10
        sgd     51.67 + o -> 54.67 ± 1.76          BWT -27.50
        hat     51.67 + o -> 54.67 ± 1.76 (a tie)  BWT -27.5 + 1.5 o -> -23.00 ± 2.63 (1.5 * 1.7559781)
    two_tasks: TWO_TASKS, 0.02 * offset taken from hat's acc[1, 0] and added to the others' acc[1, 1]:
        random  25 + o -> 28.00 ± 1.76             BWT -20
        joint   80.00 ± 0.00                       BWT 0.00
        sgd     70 + o -> 73.00 ± 1.76             BWT -30
        hat     82.5 - o -> 79.50 ± 1.76           BWT 5 - 2 o -> -1.00 ± 3.51"""
    folder.mkdir(parents=True, exist_ok=True)
    three = {'random': RANDOM, 'joint': JOINT, 'sgd': HAT, 'hat': HAT}
    for s in seeds:
        for name, offsets in OFFSETS.items():
            acc = np.array(three[name])
            acc[(2, 0) if name == 'hat' else (2, 2)] += 0.03 * offsets[s]
            np.savetxt(folder / f'exp_{name}_{s}.txt', acc, '%.4f')
            acc = np.array(TWO_TASKS[name])
            acc[(1, 0) if name == 'hat' else (1, 1)] += (-0.02 if name == 'hat' else 0.02) * offsets[s]
            np.savetxt(folder / f'two_tasks_{name}_{s}.txt', acc, '%.4f')
    return folder


def comparison_argv(folder, *flags, seeds='0-4'):
    return ['table', '--experiment', 'exp', '--experiments', 'two_tasks', '--approaches', 'random,joint,sgd,hat',
            '--seeds', seeds, '--folders', str(folder), *flags]


def test_latex_table(tmp_path):
    folder = write_comparison(tmp_path / 'res')
    plot_results.main(comparison_argv(folder, '--against', 'hat', '--latex', str(tmp_path / 't.tex')))
    # Bold: the highest of each column, random and joint left out (joint is higher on two_tasks); sgd and hat tie on
    # exp's accuracy. Dagger: Holm-adjusted t-test p < 0.05 against hat. No dagger where the difference to hat is
    # 0 on average (sgd's exp accuracy: o_sgd - o_hat = 3, -1, 2, -2, -2), goes either way with a small mean
    # (random's exp BWT, 2.5 - 1.5 o_hat: 1 .. -5, p 0.13; joint's two_tasks' accuracy, o_hat - 2.5, and BWT,
    # 2 o_hat - 5, p 0.52) or on hat itself; everywhere else the difference keeps one sign, far from 0
    assert (tmp_path / 't.tex').read_text() == '\n'.join([
        r'% ACC: final average accuracy, BWT: backward transfer, in %; mean $\pm$ 95% interval over seeds',
        r'% bold: the best of each column (highest ACC, highest BWT), random and joint left out',
        r'% $^\dagger$: p < 0.05 against hat, paired t-test over seeds, Holm-corrected over the approaches compared',
        r'\begin{tabular}{lcccc}',
        r'\toprule',
        r' & \multicolumn{2}{c}{exp} & \multicolumn{2}{c}{two\_tasks} \\',
        r'\cmidrule(lr){2-3} \cmidrule(lr){4-5}',
        r'Approach & ACC (\%) & BWT (\%) & ACC (\%) & BWT (\%) \\',
        r'\midrule',
        r'random & 18.00 $\pm$ 1.76$^\dagger$ & -25.00 $\pm$ 0.00 & 28.00 $\pm$ 1.76$^\dagger$ & '
        r'-20.00 $\pm$ 0.00$^\dagger$ \\',
        r'joint & 71.67 $\pm$ 0.00$^\dagger$ & -10.00 $\pm$ 0.00$^\dagger$ & 80.00 $\pm$ 0.00 & 0.00 $\pm$ 0.00 \\',
        r'sgd & \textbf{54.67 $\pm$ 1.76} & -27.50 $\pm$ 0.00$^\dagger$ & 73.00 $\pm$ 1.76$^\dagger$ & '
        r'-30.00 $\pm$ 0.00$^\dagger$ \\',
        r'hat & \textbf{54.67 $\pm$ 1.76} & \textbf{-23.00 $\pm$ 2.63} & \textbf{79.50 $\pm$ 1.76} & '
        r'\textbf{-1.00 $\pm$ 3.51} \\',
        r'\bottomrule',
        r'\end{tabular}']) + '\n'


def test_latex_table_of_one_seed_and_names_to_escape(tmp_path):
    folder = write_runs(tmp_path / 'res', experiment='split_cifar100', approaches=('hat',))
    np.savetxt(folder / 'split_cifar100_hat_50%_0.txt', np.array(JOINT), '%.4f')
    plot_results.main(['table', '--experiment', 'split_cifar100', '--approaches', 'hat,hat_50%', '--seeds', '0',
                       '--folders', str(folder), '--latex', str(tmp_path / 't.tex')])
    lines = (tmp_path / 't.tex').read_text().splitlines()
    assert lines[1] == '% bold: the best of each column (highest ACC, highest BWT)'  # no random or joint to leave out
    assert lines[4] == r' & \multicolumn{2}{c}{split\_cifar100} \\'
    # one seed: no interval, the mean alone; JOINT's matrix beats HAT's on both columns
    assert lines[-4:-2] == [r'hat & 51.67 & -27.50 \\', r'hat\_50\% & \textbf{71.67} & \textbf{-10.00} \\']


def test_significance_against_scipy_and_holm(tmp_path, capsys):
    from scipy import stats
    folder = write_comparison(tmp_path / 'res')
    data = plot_results.main(comparison_argv(folder, '--against', 'hat', '--csv', str(tmp_path / 't.csv'),
                                             '--markdown', str(tmp_path / 't.md')))
    table = {(r['experiment'], r['approach']): r for r in csv.DictReader((tmp_path / 't.csv').open(newline=''))}
    # Per seed, by hand (write_comparison): the final accuracy and BWT of each approach
    o = {name: np.array(offsets, dtype=float) for name, offsets in OFFSETS.items()}
    final = {('exp', 'random'): 15 + o['random'], ('exp', 'joint'): np.full(5, 215 / 3),
             ('exp', 'sgd'): 155 / 3 + o['sgd'], ('exp', 'hat'): 155 / 3 + o['hat'],
             ('two_tasks', 'random'): 25 + o['random'], ('two_tasks', 'joint'): np.full(5, 80.0),
             ('two_tasks', 'sgd'): 70 + o['sgd'], ('two_tasks', 'hat'): 82.5 - o['hat']}
    bwt = {('exp', 'random'): np.full(5, -25.0), ('exp', 'joint'): np.full(5, -10.0), ('exp', 'sgd'): np.full(5, -27.5),
           ('exp', 'hat'): -27.5 + 1.5 * o['hat'], ('two_tasks', 'random'): np.full(5, -20.0),
           ('two_tasks', 'joint'): np.zeros(5), ('two_tasks', 'sgd'): np.full(5, -30.0),
           ('two_tasks', 'hat'): 5 - 2 * o['hat']}
    others = ('random', 'joint', 'sgd')
    for experiment in ('exp', 'two_tasks'):
        assert [table[experiment, 'hat'][f'{m}_{t}_p'] for m in ('acc_final', 'bwt') for t in ('ttest', 'wilcoxon')] \
            == ['ref'] * 4
        for metric, values in (('acc_final', final), ('bwt', bwt)):
            for test in (stats.ttest_rel, stats.wilcoxon):
                raw = [test(values[experiment, a], values[experiment, 'hat']).pvalue for a in others]
                column = f"{metric}_{'ttest' if test is stats.ttest_rel else 'wilcoxon'}_p"
                for a, p in zip(others, plot_results.metrics.holm(raw)):
                    assert table[experiment, a][column] == f'{p:.6f}', (experiment, a, column)
    # Holm by hand on exp's BWT t-test: joint's p is the smallest, times 3, sgd's second, times 2 (its raw p in
    # closed form: differences -1.5 o_hat, t = -3 sqrt(2), 4 degrees of freedom: 1 - 12 / 11 * 3 / sqrt(11)),
    # random's the largest, times 1
    raw = {a: stats.ttest_rel(bwt['exp', a], bwt['exp', 'hat']).pvalue for a in others}
    assert raw['sgd'] == pytest.approx(1 - 12 / 11 * 3 / math.sqrt(11), rel=1e-9)
    assert raw['joint'] < raw['sgd'] < raw['random'] and 2 * raw['sgd'] < raw['random']
    expected = {'joint': 3 * raw['joint'], 'sgd': 2 * raw['sgd'], 'random': raw['random']}
    for a in others:
        assert data['rows'][['random', 'joint', 'sgd', 'hat'].index(a)]['tests']['bwt']['ttest'] == \
            pytest.approx(expected[a], rel=1e-12)
        assert table['exp', a]['bwt_ttest_p'] == f'{expected[a]:.6f}'
    # Wilcoxon, exp's accuracy: random and joint below hat on all 5 seeds (exact p 2 / 2^5 each), raised by Holm to
    # 3 times, then to their running maximum
    assert table['exp', 'random']['acc_final_wilcoxon_p'] == table['exp', 'joint']['acc_final_wilcoxon_p'] == '0.187500'
    # sgd's accuracy minus hat's, 3, -1, 2, -2, -2: t = 0, and Wilcoxon's ranks balance (1 + 3 * 3 = 4 + 3 + 3), p = 1
    assert table['exp', 'sgd']['acc_final_ttest_p'] == table['exp', 'sgd']['acc_final_wilcoxon_p'] == '1.000000'
    # Several experiments: a leading experiment column; two_tasks has no accuracy after 3 tasks
    assert list(table['exp', 'hat'])[:4] == ['experiment', 'approach', 'seeds', 'acc_1']
    assert table['two_tasks', 'hat']['acc_3'] == 'n/a' and table['two_tasks', 'hat']['acc_final'] == '79.500000'
    markdown = (tmp_path / 't.md').read_text().splitlines()
    assert markdown[0].startswith('| experiment | approach | seeds | acc 1 |')
    assert markdown[0].endswith('| rho | final acc p(t) | final acc p(W) | BWT p(t) | BWT p(W) |')
    assert markdown[4].endswith(f"| 1.000 | 1.000 | {expected['sgd']:.3f} | 0.188 |")  # exp, sgd
    assert markdown[5].endswith('| ref | ref | ref | ref |')
    assert 'final acc p(t)' in capsys.readouterr().out


def test_significance_needs_three_seeds_in_common(tmp_path):
    folder = write_comparison(tmp_path / 'res', seeds=(0, 1))
    data = plot_results.main(comparison_argv(folder, '--against', '--csv', str(tmp_path / 't.csv'), '--latex',
                                             str(tmp_path / 't.tex'), seeds='0,1'))
    # --against alone: the first of --approaches
    assert [r['approach'] for r in data['rows'] if r['tests'] is None] == ['random', 'random']
    table = list(csv.DictReader((tmp_path / 't.csv').open(newline='')))
    assert {r['bwt_ttest_p'] for r in table} == {'ref', 'n<3'}
    assert {r['acc_final_wilcoxon_p'] for r in table if r['approach'] != 'random'} == {'n<3'}
    latex = (tmp_path / 't.tex').read_text()
    assert 'against random, paired t-test over seeds, Holm-corrected over the approaches compared; not tested: ' \
           'fewer than 3 seeds in common\n' in latex
    assert '$^\\dagger$ &' not in latex and '$^\\dagger$ \\\\' not in latex


def test_identical_approaches_are_not_different(tmp_path):
    folder = write_comparison(tmp_path / 'res')
    for s in range(5):
        (folder / f'exp_copy_{s}.txt').write_bytes((folder / f'exp_hat_{s}.txt').read_bytes())
    data = plot_results.main(['table', '--experiment', 'exp', '--approaches', 'hat,copy', '--seeds', '0-4',
                              '--folders', str(folder), '--against', 'hat'])
    # zero differences on every seed: p = 1 for both tests (Wilcoxon has nothing to rank)
    assert data['rows'][1]['tests'] == {m: {'pairs': 5, 'ttest': 1.0, 'wilcoxon': 1.0} for m in ('acc_final', 'bwt')}


def test_published_figures_beside_ours(tmp_path, capsys):
    folder = write_runs(tmp_path / 'res', seeds=range(5), shift=0.03)  # test_table_by_hand's table
    published = tmp_path / 'published.csv'
    published.write_text('approach,experiment,metric,value,source\n'
                         'hat,exp,acc_final,50,"Paper A, Table 1"\n'
                         'hat,exp,bwt,-20.5,"Paper A, Table 1"\n'
                         '\n'
                         'hat,exp,rho_2,0.1,"Paper A, Table 1"\n'
                         'hat,exp,acc_final,60,Paper B\n'
                         'joint,exp,acc_final,70,Paper B\n'
                         'hat,exp,acc_4,1,Paper B\n'  # exp has 3 tasks: never matches
                         'hat,other,acc_final,1,Paper B\n'  # neither do other experiments
                         'sgd,exp,acc_final,1,Paper B\n')  # nor approaches not in the table
    plot_results.main(['table', '--experiment', 'exp', '--approaches', 'random,joint,hat', '--seeds', '0-4',
                       '--folders', str(folder), '--reference', str(published), '--csv', str(tmp_path / 't.csv'),
                       '--markdown', str(tmp_path / 't.md')])
    table = list(csv.DictReader((tmp_path / 't.csv').open(newline='')))
    # rho_2, published only, gets a column after rho: HAT's rho after 2 tasks is HAT_CURVE[1] = 0.0625 on every seed
    assert list(table[0])[-5:] == ['rho', 'rho_ci95', 'rho_2', 'rho_2_ci95', 'source']
    assert [r['source'] for r in table] == ['ours', 'ours', 'Paper B', 'ours - published', 'ours', 'Paper A, Table 1',
                                            'ours - published', 'Paper B', 'ours - published']
    assert (table[4]['approach'], table[4]['seeds'], table[4]['rho_2'], table[4]['rho_2_ci95']) == \
        ('hat', '5', '0.062500', '0.000000')

    def filled(row):
        return {k: v for k, v in row.items() if v}
    # beneath each of our lines, per source, its figures and ours minus them: joint's 71.666667 - 70; HAT's
    # 53.666667 - 50 and - 60, -27.5 - -20.5, 0.0625 - 0.1
    assert [filled(r) for r in table[2:4]] == [
        {'approach': 'joint', 'acc_final': '70.000000', 'source': 'Paper B'},
        {'approach': 'joint', 'acc_final': '1.666667', 'source': 'ours - published'}]
    assert [filled(r) for r in table[5:]] == [
        {'approach': 'hat', 'acc_final': '50.000000', 'bwt': '-20.500000', 'rho_2': '0.100000',
         'source': 'Paper A, Table 1'},
        {'approach': 'hat', 'acc_final': '3.666667', 'bwt': '-7.000000', 'rho_2': '-0.037500',
         'source': 'ours - published'},
        {'approach': 'hat', 'acc_final': '60.000000', 'source': 'Paper B'},
        {'approach': 'hat', 'acc_final': '-6.333333', 'source': 'ours - published'}]
    markdown = (tmp_path / 't.md').read_text().splitlines()
    assert markdown[0].endswith('| rho | rho 2 | source |')
    assert markdown[7] == '| hat |  |  |  |  | 50.00 | -20.50 |  |  | 0.100 | Paper A, Table 1 |'
    assert markdown[8] == '| hat |  |  |  |  | 3.67 | -7.00 |  |  | -0.038 | ours - published |'
    assert 'ours - published' in capsys.readouterr().out
    published.write_text('approach,experiment,metric,value,source\nhat,other,acc_final,1,Paper B\n')
    plot_results.main(['table', '--experiment', 'exp', '--approaches', 'hat', '--seeds', '0', '--folders', str(folder),
                       '--reference', str(published)])
    assert f'{published}: no published figure for these experiments and approaches' in capsys.readouterr().out


def test_shipped_published_results():
    """scripts/published_results.csv holds published figures, each with its source."""
    figures = plot_results.load_published(ROOT / 'scripts' / 'published_results.csv')
    gpm, wsn, kim = 'GPM (Saha et al., ICLR 2021), Table 1', 'WSN (Kang et al., ICML 2022)', 'Kim et al. (NeurIPS 2022)'
    assert {(f['approach'], f['experiment'], f['metric'], f['source'].split(':')[0]): f['value'] for f in figures} == {
        ('hat', 'split_cifar100', 'acc_final', gpm): 72.02, ('hat', 'split_cifar100', 'bwt', gpm): -0.0,
        ('gpm', 'split_cifar100', 'acc_final', gpm): 72.52, ('joint', 'split_cifar100', 'acc_final', gpm): 79.75,
        ('hat', 'five_datasets', 'acc_final', gpm): 91.42, ('hat', 'five_datasets', 'bwt', gpm): -0.01,
        ('hat', 'miniimagenet', 'acc_final', gpm): 60.11, ('hat', 'miniimagenet', 'bwt', gpm): -0.03,
        ('wsn', 'split_cifar100', 'acc_final', wsn): 76.38, ('supsup', 'split_cifar100', 'acc_final', wsn): 75.47,
        ('packnet', 'split_cifar100', 'acc_final', wsn): 72.39, ('hat', 'split_cifar100', 'acc_final', kim): 84.0}


def test_matrix_figure(tmp_path):
    acc = np.array([[0.9, 0, 0], [0.85, 0.8, 0], [0, 0, 0]], dtype=np.float32)
    write_result(tmp_path / 'run.txt', acc, tasks_done=2)
    argv = ['matrix', str(tmp_path / 'run.pkl'), *figure_argv(tmp_path, size='4,4', dpi='30')]
    with pytest.raises(utils.UserError, match=r'run.txt: an unfinished run \(2 of 3 tasks\)'):
        plot_results.main(argv)
    data = plot_results.main(argv + ['--unfinished'])
    assert data['task_names'] == ['task0', 'task1', 'task2'] and data['named']
    # in %, blank above the diagonal and for the task not done
    np.testing.assert_allclose(data['acc'], [[90, np.nan, np.nan], [85, 80, np.nan], [np.nan] * 3], equal_nan=True,
                               rtol=1e-6)
    assert_image(tmp_path / 'fig.png', 120, 120)
    (tmp_path / 'run.pkl').unlink()  # the .txt alone, as the original wrote it: its row of zeros is a task not done
    with pytest.raises(utils.UserError, match='judged by its untrained rows of zeros'):
        plot_results.main(['matrix', str(tmp_path / 'run.txt'), *figure_argv(tmp_path)])
    np.savetxt(tmp_path / 'run.txt', acc + np.tril(np.full((3, 3), 0.1)), '%.4f')
    data = plot_results.main(['matrix', str(tmp_path / 'run.txt'), *figure_argv(tmp_path)])
    assert data['task_names'] == ['task 0', 'task 1', 'task 2'] and data['acc'][2, 0] == pytest.approx(10)
    fig = plot_results.plot_matrix(data, argparse.Namespace(size=(5, 3), dpi=40))
    ax = fig.axes[0]
    assert ax.get_title() == 'run: accuracy (%) after each task'  # a name not of run.py's form: the name itself
    assert 'a .txt alone has no task names' in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == ['task 0', 'task 1', 'task 2']
    # the colours span the values shown (10 .. 100), not 0-100, and the colour bar says so
    assert ax.images[0].get_clim() == pytest.approx((10, 100))
    assert "this run's range" in fig.axes[1].get_ylabel()
    plot_results.plt.close(fig)


def test_matrix_figure_of_a_run(tmp_path):
    """A run's .txt and .pkl: the title names its experiment, approach and seed; one value alone still has a scale."""
    acc = np.array([[0.967, 0], [0.999, 0.98]])
    write_result(tmp_path / 'mnist2_hat_3.txt', acc)
    data = plot_results.main(['matrix', str(tmp_path / 'mnist2_hat_3.txt'), *figure_argv(tmp_path)])
    fig = plot_results.plot_matrix(data, argparse.Namespace(size=(5, 3), dpi=40))
    assert fig.axes[0].get_title() == 'mnist2 · hat · seed 3: accuracy (%) after each task'
    assert fig.axes[0].images[0].get_clim() == pytest.approx((96.7, 99.9))
    plot_results.plt.close(fig)
    write_result(tmp_path / 'other.txt', [[0.5]], experiment='pmnist', approach='sgd', seed=2)
    data = plot_results.main(['matrix', str(tmp_path / 'other.txt'), *figure_argv(tmp_path)])
    assert data['run'] == 'pmnist · sgd · seed 2'  # from the .pkl, the name saying nothing
    fig = plot_results.plot_matrix(data, argparse.Namespace(size=(5, 3), dpi=40))
    assert fig.axes[0].images[0].get_clim() == pytest.approx((49, 50))  # a span of 1, within 0-100
    plot_results.plt.close(fig)


def test_curves_figure(tmp_path):
    records = [{'task': t, 'epoch': e + 1, 'lr': 0.05, 'train_loss': 1 / (e + 1), 'valid_loss': 1.5 / (e + 1),
                'train_acc': 0.5 + 0.1 * e, 'valid_acc': 0.4 + 0.1 * e} for t, n in ((0, 3), (1, 2)) for e in range(n)]
    log = tmp_path / 'run.jsonl'
    log.write_text(''.join(json.dumps(r) + '\n' for r in records))
    data = plot_results.main(['curves', str(log), *figure_argv(tmp_path)])
    assert data['boundaries'] == [3]  # task 1 begins at the fourth epoch logged
    np.testing.assert_allclose(data['train_loss'], [1, 1 / 2, 1 / 3, 1, 1 / 2])
    np.testing.assert_allclose(data['valid_acc'], [0.4, 0.5, 0.6, 0.4, 0.5])
    assert_image(tmp_path / 'fig.png', 200, 120)
    plot_results.main(['curves', str(log), '--output', str(tmp_path / 'default.png')])
    assert_image(tmp_path / 'default.png', 700, 500)  # 7 x 5 inches at 100 dpi
    fig = plot_results.plot_curves(data, argparse.Namespace(size=(5, 3), dpi=40))
    loss, accuracy = fig.axes[:2]
    assert fig.get_suptitle() == 'run: learning curves'
    assert loss.get_ylabel() == 'loss' and data['terms'] == []  # nothing but the cross-entropy logged
    # the task of each stretch of epochs, named above it
    assert [t.get_text() for t in loss.child_axes[0].get_xticklabels()] == ['task 0', 'task 1']
    np.testing.assert_allclose(loss.child_axes[0].get_xticks(), [2, 4.5])
    assert all(float(t).is_integer() for t in accuracy.get_xticks())
    plot_results.plt.close(fig)


def test_curves_of_one_epoch_per_task_and_hats_regulariser(tmp_path):
    """One epoch per task: lines with markers between tasks, not lone dots; HAT's logged loss includes lamb * reg,
    which the axis says."""
    records = [{'task': t, 'epoch': 1, 'train_loss': 1.0, 'valid_loss': 1.0, 'train_acc': 0.5, 'valid_acc': 0.5,
                'train_reg': 0.4, 'valid_reg': 0.4} for t in (0, 1, 2)]
    log = tmp_path / 'split_fmnist_hat_0.jsonl'
    log.write_text(''.join(json.dumps(r) + '\n' for r in records))
    data = plot_results.main(['curves', str(log), *figure_argv(tmp_path)])
    assert data['terms'] == ['reg'] and data['run'] == 'split_fmnist · hat · seed 0'
    fig = plot_results.plot_curves(data, argparse.Namespace(size=(5, 3), dpi=40))
    loss = fig.axes[0]
    assert loss.get_ylabel() == 'loss\n(cross-entropy + lamb·reg)'
    assert fig.get_suptitle() == 'split_fmnist · hat · seed 0: learning curves'
    joins = [line for line in loss.lines if line.get_linestyle() == ':' and line.get_color() != 'gray']
    assert len(joins) == 4  # train and valid, across each of the two boundaries
    assert all(line.get_marker() in ('o', 's') for line in loss.lines if len(line.get_xdata()) == 1)
    plot_results.plt.close(fig)


########################################################################################################################
# Capacity


def write_capacity_runs(folder, seeds=range(5)):
    """exp's random and joint (.txt alone), sgd (a .pkl without capacity, as run.py saves it for sgd) and hat, whose
    records are _base.capacity_record's of counts by hand: of 1000 masked parameters, per seed s, task 0 takes 200,
    task 1 100 and task 2 200 + 10 s, so the share used is 20, 30, 50 + s %: after the last task 52 ± 1.7559781 (%)
    over seeds 0-4 (offsets -2..2, as above). sgd's and hat's matrices are both HAT."""
    write_runs(folder, seeds=seeds, approaches=('random', 'joint'))
    for s in seeds:
        write_result(folder / f'exp_sgd_{s}.txt', HAT)
        saved = write_result(folder / f'exp_hat_{s}.txt', HAT)
        counts = [200, 100, 200 + 10 * s]
        saved['capacity'] = [_base.capacity_record(t, 'masked parameters', 1000, counts[:t + 1], sum(counts[:t + 1]))
                             for t in range(3)]
        results.save(folder / f'exp_hat_{s}.txt', saved)
    return folder


def test_table_capacity_column(tmp_path, capsys):
    folder, out = write_capacity_runs(tmp_path / 'res'), tmp_path / 'out'
    data = plot_results.main(['table', '--experiment', 'exp', '--approaches', 'random,joint,sgd,hat', '--seeds', '0-4',
                              '--folders', str(folder), '--csv', str(out / 't.csv'), '--markdown', str(out / 't.md'),
                              '--latex', str(out / 't.tex')])
    rows = {r['approach']: r for r in data['rows']}
    assert rows['hat']['capacity'] == pytest.approx((52, T_975_4DOF * math.sqrt(2) / math.sqrt(5)))
    assert rows['hat']['capacity_of'] == 'masked parameters'
    assert all(math.isnan(v) for a in ('random', 'joint', 'sgd') for v in rows[a]['capacity'])
    # The other columns bitwise as without capacity: sgd has hat's matrices and saved none
    others = [{k: v for k, v in rows[a].items() if k not in ('approach', 'name', 'capacity', 'capacity_of')}
              for a in ('sgd', 'hat')]
    assert others[0] == others[1]

    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[-3:] == ['rho', 'capacity', 'used']
    assert printed[3].endswith('n/a') and printed[4].endswith('52.00 ± 1.76')  # sgd, hat
    assert printed[6] == ('Capacity used: % of the network the tasks take after the last task, of the masked '
                          'parameters (hat); n/a: no capacity saved')
    with open(out / 't.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[-4:] == ['rho', 'rho_ci95', 'capacity', 'capacity_ci95']
    assert (table[3]['capacity'], table[3]['capacity_ci95']) == ('52.000000', '1.755978')
    assert table[2]['capacity'] == table[2]['capacity_ci95'] == 'n/a'
    markdown = (out / 't.md').read_text().splitlines()
    assert markdown[0].endswith('| rho | capacity used |') and markdown[1] == '|' + '---|' * 10
    assert markdown[4].endswith('| -0.514 ± 0.000 | n/a |') and markdown[5].endswith('| 52.00 ± 1.76 |')
    latex = (out / 't.tex').read_text().splitlines()
    assert latex[2] == ('% Used: % of the network the tasks take after the last task, of the masked parameters '
                        '(hat); mean $\\pm$ 95% interval over seeds; n/a: no capacity saved')
    assert latex[3:9] == [r'\begin{tabular}{lccc}', r'\toprule', r' & \multicolumn{3}{c}{exp} \\',
                          r'\cmidrule(lr){2-4}', r'Approach & ACC (\%) & BWT (\%) & Used (\%) \\', r'\midrule']
    # no bold for capacity (more used is neither better nor worse)
    assert latex[11:13] == [r'sgd & \textbf{51.67 $\pm$ 0.00} & \textbf{-27.50 $\pm$ 0.00} & n/a \\',
                            r'hat & \textbf{51.67 $\pm$ 0.00} & \textbf{-27.50 $\pm$ 0.00} & 52.00 $\pm$ 1.76 \\']


def test_capacity_figure(tmp_path, capsys):
    folder = write_capacity_runs(tmp_path / 'res')
    data = plot_results.main(['capacity', '--experiment', 'exp', '--approaches', 'hat', '--seeds', '0-4', '--folders',
                              str(folder), '--per-task', 'hat', *figure_argv(tmp_path, size='8,3')])
    curve = data['curves']['hat']
    assert curve['of'] == 'masked parameters' and data['ntasks'] == 3
    np.testing.assert_allclose(curve['per_seed'], [[20, 30, 50 + s] for s in range(5)])
    np.testing.assert_allclose(curve['mean'], [20, 30, 52])
    np.testing.assert_allclose(curve['ci'], [0, 0, T_975_4DOF * math.sqrt(2) / math.sqrt(5)], atol=1e-12)
    bars = data['bars']  # seed 0's run
    assert bars['run'] == 'exp · hat · seed 0' and bars['of'] == 'masked parameters'
    for shares, expected in zip(bars['shares'], [[20], [20, 10], [20, 10, 20]]):
        np.testing.assert_allclose(shares, expected)
    np.testing.assert_allclose(bars['used'], [20, 30, 50])
    assert capsys.readouterr().out.splitlines()[:3] == [
        'Capacity used after k tasks (% of what each approach counts): mean (95% half-width) over 5 seeds',
        'k                             1               2               3',
        'hat (masked parameters)    20.0 (  0.0)    30.0 (  0.0)    52.0 (  1.8)']
    assert_image(tmp_path / 'fig.png', 320, 120)
    fig = plot_results.plot_capacity(data, argparse.Namespace(size=(8, 3), dpi=40))
    lines, stacked = fig.axes[:2]
    assert lines.get_title() == 'exp: capacity used (mean and 95% interval over seeds 0-4)'
    assert lines.get_ylabel() == 'network used (%)' and lines.get_xlabel() == 'tasks learned'
    assert [t.get_text() for t in lines.get_legend().get_texts()] == ['hat (masked parameters)']
    np.testing.assert_allclose(lines.get_xticks(), [1, 2, 3])
    np.testing.assert_allclose(lines.containers[0].lines[0].get_xdata(), [1, 2, 3])  # one line: on the tasks
    assert stacked.get_title() == "exp · hat · seed 0: each task's share"
    # per task, its bar after each number of tasks (0 before it is learned), on top of the earlier tasks'
    bottoms_heights = [(p.get_x() + p.get_width() / 2, p.get_y(), p.get_height()) for p in stacked.patches]
    np.testing.assert_allclose(bottoms_heights, [(1, 0, 20), (2, 0, 20), (3, 0, 20), (1, 20, 0), (2, 20, 10),
                                                 (3, 20, 10), (1, 20, 0), (2, 30, 0), (3, 30, 20)])
    np.testing.assert_allclose([segment[0][1] for segment in stacked.collections[0].get_segments()], [20, 30, 50])
    assert [t.get_text() for t in stacked.get_legend().get_texts()] == ['task 2', 'task 1', 'task 0',
                                                                        'used (all tasks)']
    plot_results.plt.close(fig)
    argv = ['capacity', '--experiment', 'exp', '--approaches', 'hat', '--output', 'x.png']
    assert plot_results.parse_args(argv).size == (6, 4)
    assert plot_results.parse_args([*argv, '--per-task', 'hat']).size == (11, 4)


def test_capacity_errors(tmp_path, monkeypatch, capsys):
    folder = write_capacity_runs(tmp_path / 'res', seeds=(0,))
    write_result(folder / 'old_hat_0.txt', HAT)  # as hat saved it before the capacity hook
    saved = write_result(folder / 'bad_hat_0.txt', HAT)
    saved['capacity'] = [_base.capacity_record(0, 'weights', 10, [11], 11)]
    results.save(folder / 'bad_hat_0.txt', saved)
    for experiment, approaches, fragment in (
            ('exp', 'hat,sgd', f"{folder / 'exp_sgd_0.txt'}: approach sgd saves no capacity (it sets no part of the "
                               f"network aside per task)"),
            ('exp', 'random', f"{folder / 'exp_random_0.txt'}: no .pkl beside it, so no capacity"),
            ('old', 'hat', f"{folder / 'old_hat_0.txt'}: no capacity saved, though hat saves it"),
            ('bad', 'hat', f"{folder / 'bad_hat_0.pkl'}: 'capacity' is not a list of one record per task (3)"),
            ('exp', 'hat --per-task sgd', '--per-task sgd: not one of --approaches (hat)')):
        monkeypatch.setattr(sys, 'argv', ['plot_results.py', 'capacity', '--experiment', experiment, '--seeds', '0',
                                          '--folders', str(folder), '--output', str(tmp_path / 'f.png'),
                                          '--approaches', *approaches.split()])
        with pytest.raises(SystemExit) as e:
            utils.run_cli(plot_results.main)
        assert_one_line_error(e.value.code, capsys.readouterr().err, fragment)
    saved['capacity'] = [{**_base.capacity_record(t, 'weights', 10, [1] * (t + 1), t + 1), 'task': 0} for t in range(3)]
    results.save(folder / 'bad_hat_0.txt', saved)
    with pytest.raises(utils.UserError, match="bad_hat_0.pkl: capacity record 1 is not {'task': 1, 'of'"):
        plot_results.capacity_records(results.read(folder / 'bad_hat_0.txt'))
    assert not (tmp_path / 'f.png').exists()


########################################################################################################################
# HAT masks


def test_best_epoch_is_the_loops():
    assert hat_masks.best_epoch([0.5, 0.3, 0.3, 0.4]) == 1  # the first of equal losses: kept on strictly lower
    assert hat_masks.best_epoch([np.nan, 0.2]) == 1
    assert hat_masks.best_epoch([]) == -1  # untrained (single-task mode): the initial weights


@pytest.fixture(scope='module')
def hat_test_run(data_dir, tmp_path_factory):
    """A real hat-test run on the tiny mnist2 (a dry run: one epoch of 3 batches per task, which is enough to move
    the masks): its results pickle, monitoring log and epoch log."""
    root = tmp_path_factory.mktemp('hat_test')
    run.main(['--experiment', 'mnist2', '--approach', 'hat-test', '--data-dir', str(data_dir),
              '--results-dir', str(root / 'res'), '--logs-dir', str(root / 'logs'),
              '--dry-run', '--batch-size', '16', '--device', 'cpu'])
    name = 'mnist2_hat-test_0_dryrun'
    return root / 'res' / f'{name}.pkl', root / 'logs' / f'{name}_masks.pkz', root / 'logs' / f'{name}.jsonl'


def test_masks_of_a_real_hat_test_run(hat_test_run, tmp_path, capsys):
    results_pkl, pkz, jsonl = hat_test_run
    data = plot_results.main(['masks', str(pkz), '--run', str(results_pkl), *figure_argv(tmp_path)])
    with gzip.open(pkz, 'rb') as f:
        logs = pickle.load(f)
    assert data['layers'] == ['fc1', 'fc2'] and data['units'] == [2000, 2000]
    assert data['weights'] == [784 * 2000, 2000 * 2000]
    # After task 0: the cumulative mask the log holds before task 1, counted directly
    after0 = [logs['mask_pre'][1][k] > 0.5 for k in (0, 1)]
    np.testing.assert_allclose(data['unit_use'][:, 0], [a.mean() for a in after0])
    # After the last task: max(before it, its mask at the best epoch, which the epoch log marks)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    best = max(r['epoch'] for r in records if r['task'] == 1 and r['best']) - 1
    after1 = [np.maximum(logs['mask_pre'][1][k], logs['mask'][1][k][best]) > 0.5 for k in (0, 1)]
    np.testing.assert_allclose(data['unit_use'][:, 1], [a.mean() for a in after1])
    # The same rebuild for task 0 reproduces the cumulative mask HAT itself logged before task 1
    rebuilt = hat_masks.cumulative_after({**logs, 'mask_pre': {0: logs['mask_pre'][0]}}, 0)
    for k in (0, 1):
        np.testing.assert_array_equal(rebuilt[k], logs['mask_pre'][1][k].ravel())
    # Weights: fc1 (the first layer) follows its output units; fc2's weight is used where both its units are
    for t, after in enumerate((after0, after1)):
        assert data['weight_use'][0, t] == pytest.approx(after[0].mean())
        assert data['weight_use'][1, t] == pytest.approx(after[1].mean() * after[0].mean())
        total = (after[0].sum() * 784 + after[1].sum() * after[0].sum()) / (784 * 2000 + 2000 * 2000)
        assert data['weight_use_total'][t] == pytest.approx(total)
    assert np.all(np.diff(data['unit_use'], axis=1) >= 0)  # the cumulative mask only grows
    # Binarisation: per task, every epoch logged (-1: before training), all layers pooled
    for t in (0, 1):
        assert sorted(data['binarised'][t]) == [-1, 0]
        gates = np.concatenate([logs['mask'][t][k][0].ravel() for k in (0, 1)])
        assert data['binarised'][t][0] == pytest.approx(np.mean((gates < 0.01) | (gates > 0.99)))
    assert 'fc2' in capsys.readouterr().out
    assert_image(tmp_path / 'fig.png', 200, 120)
    # The figure: titled with the run, room for three panels, lines told apart, legends below the data
    plot_results.main(['masks', str(pkz), '--run', str(results_pkl), '--output', str(tmp_path / 'default.png')])
    assert_image(tmp_path / 'default.png', 1300, 450)  # 13 x 4.5 inches at 100 dpi
    fig = plot_results.plot_masks(data, argparse.Namespace(size=(13, 4.5), dpi=40))
    assert fig.get_suptitle() == "mnist2 · hat-test · seed 0: HAT's masks (in use: cumulative mask > 0.5)"
    for ax in fig.axes[:3]:
        styles = [(line.get_marker(), line.get_linestyle()) for line in ax.lines]
        assert len(set(styles)) == len(styles)
        assert ax.get_legend().get_bbox_to_anchor().y1 < ax.bbox.y0
    assert all(float(t).is_integer() for t in fig.axes[2].get_xticks())
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == ['task 0 (mnist-0-4)', 'task 1 (mnist-5-9)']
    plot_results.plt.close(fig)


def test_masks_count_conv_weights_by_hand(tmp_path):
    """alexnet_hat, one task, masks made by hand: conv channels and the conv->fc expansion."""
    used = {'c1': (16, 64), 'c2': (64, 128), 'c3': (64, 256), 'fc1': (512, 2048), 'fc2': (1024, 2048)}
    best, later, before = {}, {}, {}
    for k, (on, units) in enumerate(used.values()):
        best[k] = np.zeros((1, units), dtype=np.float32)
        best[k][0, :on] = 1
        later[k] = np.ones((1, units), dtype=np.float32)  # epoch 1 is not the best: must not be counted
        before[k] = np.where(np.arange(units) % 2 == 0, 0.995, 0.5).astype(np.float32)[None]  # half near 1
    logs = {'mask': {0: {k: {-1: before[k], 0: best[k], 1: later[k]} for k in range(5)}},
            'mask_pre': {0: {k: np.zeros_like(best[k]) for k in range(5)}},
            'valid_loss': {0: np.array([0.5, 0.7])}, 'test_acc': {0: np.array([0.8])}, 'task_name': {0: 'x'}}
    (tmp_path / 'x_masks.pkz').write_bytes(gzip.compress(pickle.dumps(logs)))
    saved = write_result(tmp_path / 'x.txt', [[0.8]], network='alexnet_hat')
    saved['inputsize'] = [3, 32, 32]
    (tmp_path / 'x.pkl').write_bytes(pickle.dumps(saved))
    data = plot_results.masks_data(tmp_path / 'x_masks.pkz', tmp_path / 'x.pkl', 0.5)
    units = {'c1': 0.25, 'c2': 0.5, 'c3': 0.25, 'fc1': 0.25, 'fc2': 0.5}
    np.testing.assert_allclose(data['unit_use'][:, 0], list(units.values()))
    # c1 follows its output channels; the others need both ends; fc1's inputs are c3's channels repeated over the
    # spatial positions, which keeps c3's fraction
    weights = {'c1': 0.25, 'c2': 0.5 * 0.25, 'c3': 0.25 * 0.5, 'fc1': 0.25 * 0.25, 'fc2': 0.5 * 0.25}
    np.testing.assert_allclose(data['weight_use'][:, 0], list(weights.values()))
    net = alexnet_hat.Net([3, 32, 32], [(0, 2)])
    sizes = [getattr(net, layer).weight.numel() for layer in used]
    assert data['weights'] == sizes
    assert data['weight_use_total'][0] == pytest.approx(np.dot(sizes, list(weights.values())) / sum(sizes))
    assert data['binarised'][0] == {-1: 0.5, 0: 1.0, 1: 1.0}


########################################################################################################################
# Bad input


def assert_one_line_error(returncode, stderr, *fragments):
    assert returncode == 2, stderr
    assert 'Traceback' not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_command_line_errors(tmp_path):
    """As a user runs it: one line on stderr, exit status 2 (both at once: each imports torch)."""
    folder = write_runs(tmp_path / 'res', seeds=(0, 1))
    common = ['--experiment', 'exp', '--folders', str(folder)]
    headless = {k: v for k, v in os.environ.items() if k not in ('DISPLAY', 'WAYLAND_DISPLAY')}
    cases = [
        (['--approaches', 'random,joint,hat', '--seeds', '0-2', *common, '--output', str(tmp_path / 'f.png')],
         ['missing result file', str(folder / 'exp_random_2.txt')]),
        (['matrix', str(folder / 'exp_hat_0.txt')], ['no display', '--output']),
    ]
    procs = [subprocess.Popen([sys.executable, str(ROOT / 'src' / 'plot_results.py'), *argv], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**headless, 'MPLBACKEND': 'Agg'})
             for argv, _ in cases]
    for proc, (_, fragments) in zip(procs, cases):
        _, stderr = proc.communicate()
        assert_one_line_error(proc.returncode, stderr, *fragments)
    assert not (tmp_path / 'f.png').exists()


@pytest.mark.parametrize('files,argv,fragment', [
    ({'exp_hat_0.txt': '0.9000 x\n0.8000 0.7000\n'}, [], "exp_hat_0.txt, line 1: 'x' is not an accuracy in run.py's "
                                                         "'%.4f' format"),
    ({'exp_hat_0.txt': '0.9000 0.1000 0.2000\n0.8000 0.7000 0.3000\n'}, [], 'expected a square accuracy matrix'),
    ({'exp_hat_0.txt': ''}, [], 'got rows of nothing'),
    ({'exp_hat_0.txt': '0.9000 0.0000\n0.8000 1.7000\n'}, [], 'in [0, 1]'),
    ({'exp_hat_0.txt': '0.9000 0.0000\n0.8000 0.7000\n'}, [], 'must have the same size'),
    ({'exp_joint_0.txt': '0.9000 0.0000 0.0000\n0.9000 0.2000 0.0000\n0.8000 0.6000 0.7500\n'}, [],
     'forgetting ratio is undefined'),
    ({}, ['--approaches', 'random,hat'], "must include random and joint (the forgetting ratio's references); "
                                          "missing: joint"),
    ({}, ['--approaches', 'random,joint'], 'nothing to plot besides'),
    ({}, ['--approaches', ','], '--approaches is empty'),
    ({}, ['--folders', ','], '--folders is empty'),
    ({}, ['--seeds', '0-x'], "argument --seeds: '0-x': use numbers and ranges"),
    ({}, ['--size', '6'], "--size '6'"),
    ({}, ['--dpi', '0'], '--dpi must be at least 1'),
    ({}, ['--output', 'fig.xyz'], '--output fig.xyz: not a figure format matplotlib writes'),
    ({}, ['--output', 'fig'], '--output fig: not a figure format'),
])
def test_bad_results(tmp_path, monkeypatch, capsys, files, argv, fragment):
    folder = write_runs(tmp_path / 'res')
    for name, text in files.items():
        (folder / name).write_text(text)
    defaults = {'--approaches': 'random,joint,hat', '--seeds': '0', '--output': str(tmp_path / 'f.png')}
    defaults.update(zip(argv[::2], argv[1::2]))
    flags = [x for kv in defaults.items() for x in kv]
    monkeypatch.setattr(sys, 'argv', ['plot_results.py', '--experiment', 'exp', '--folders', str(folder), *flags])
    with pytest.raises(SystemExit) as e:
        utils.run_cli(plot_results.main)
    assert_one_line_error(e.value.code, capsys.readouterr().err, fragment)


HEADER = 'approach,experiment,metric,value,source\n'


@pytest.mark.parametrize('content,fragment', [
    ('approach,experiment,metric,value\nhat,exp,acc_final,1\n', 'needs the columns approach, experiment, metric, '
                                                                'value, source; missing: source'),
    ('', 'missing: approach, experiment, metric, value, source'),
    (HEADER + 'hat,exp,acc_final,72.0,A\nhat,exp,bwt,high,A\n', "line 3: value 'high' is not a number"),
    (HEADER + 'hat,exp,bwt,nan,A\n', "line 2: value 'nan' is not a finite number"),
    (HEADER + 'hat,exp,acc_final\n', "line 2: not the header's 5 fields"),
    (HEADER + 'hat,exp,acc_final,1,A,extra\n', "line 2: not the header's 5 fields"),
    (HEADER + 'hat,exp,accuracy,1,A\n', "line 2: unknown metric 'accuracy'; use acc_final, bwt, forgetting, rho"),
    (HEADER + 'hat,exp,acc_0,1,A\n', "unknown metric 'acc_0'"),
    (HEADER + '\nhat,exp,bwt,1,A\nhat,exp,bwt,2,A\n', 'line 4: a second value for hat, exp, bwt, A'),
    (b'\xff\xfe\x00garbage', 'cannot be read as CSV (UnicodeDecodeError'),
    (None, 'cannot be read as CSV (IsADirectoryError'),
])
def test_bad_reference_files(tmp_path, monkeypatch, capsys, content, fragment):
    folder = write_runs(tmp_path / 'res', approaches=('hat',))
    path = tmp_path / 'published.csv'
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setattr(sys, 'argv', ['plot_results.py', 'table', '--experiment', 'exp', '--approaches', 'hat',
                                      '--seeds', '0', '--folders', str(folder), '--reference', str(path)])
    with pytest.raises(SystemExit) as e:
        utils.run_cli(plot_results.main)
    assert_one_line_error(e.value.code, capsys.readouterr().err, str(path), fragment)
    with pytest.raises(utils.UserError, match=f'missing reference file {tmp_path / "none.csv"}'):
        plot_results.load_published(tmp_path / 'none.csv')


@pytest.mark.parametrize('argv,fragment', [
    (['--experiment', 'exp', '--against', 'sgd'], '--against sgd: not one of --approaches (random, joint, hat)'),
    (['--experiments', ','], '--experiments is empty'),
    ([], 'the following arguments are required: --experiment/--experiments'),
])
def test_bad_table_flags(tmp_path, argv, fragment):
    folder = write_runs(tmp_path / 'res')
    with pytest.raises(utils.UserError) as e:
        plot_results.main(['table', '--approaches', 'random,joint,hat', '--seeds', '0', '--folders', str(folder),
                           *argv])
    assert fragment in str(e.value)


@pytest.mark.parametrize('command', ['forgetting', 'table'])
def test_unfinished_runs_are_refused(tmp_path, monkeypatch, capsys, command):
    folder = write_runs(tmp_path / 'res')
    write_result(folder / 'exp_hat_0.txt', HAT, tasks_done=2)  # what run.py saves after the second of three tasks
    monkeypatch.setattr(sys, 'argv', ['plot_results.py', command, '--experiment', 'exp', '--folders', str(folder),
                                      '--approaches', 'random,joint,hat', '--seeds', '0',
                                      *(['--output', str(tmp_path / 'f.png')] if command == 'forgetting' else [])])
    with pytest.raises(SystemExit) as e:
        utils.run_cli(plot_results.main)
    assert_one_line_error(e.value.code, capsys.readouterr().err, 'exp_hat_0.txt: an unfinished run (2 of 3 tasks); '
                                                                 'finish it with run.py --resume')
    write_result(folder / 'exp_hat_0.txt', HAT)  # finished
    utils.run_cli(plot_results.main)


def test_bad_logs(tmp_path, hat_test_run):
    results_pkl, pkz, _ = hat_test_run
    bad_json = tmp_path / 'bad.jsonl'
    bad_json.write_text('{"task": 0}\n')
    empty = tmp_path / 'empty.jsonl'
    empty.write_text('')
    copied = tmp_path / 'zz_no_such_run_masks.pkz'
    copied.write_bytes(pkz.read_bytes())
    not_hat = tmp_path / 'sgd.pkl'
    write_result(not_hat.with_suffix('.txt'), [[0.5]], network='mlp')
    no_acc = tmp_path / 'no_acc.pkl'
    write_result(no_acc.with_suffix('.txt'), [[0.5]])
    no_acc.write_bytes(pickle.dumps({'taskcla': [(0, 2)], 'tasks_done': 1, 'args': {}}))
    out = ['--output', str(tmp_path / 'f.png')]
    for argv, fragment in (
            (['curves', str(bad_json)], 'line 1: expected an object with task'),
            (['curves', str(empty)], 'no epochs logged'),
            (['curves', str(tmp_path / 'none.jsonl')], 'missing log file'),
            (['masks', str(copied)], f"missing file {utils.RESULTS_DIR / 'zz_no_such_run.pkl'}"),
            (['masks', str(pkz), '--run', str(not_hat)], 'network mlp has no task gates'),
            (['masks', str(pkz), '--run', str(results_pkl), '--threshold', '1'], '--threshold must be'),
            (['matrix', str(no_acc)], "has no 'acc'")):
        with pytest.raises(utils.UserError) as e:
            plot_results.main(argv + out)
        assert fragment in str(e.value), (argv, str(e.value))
