"""Every value is checked where it is parsed, against its meaning, as one line: each declared hyperparameter against its
bounds (the declarations found by name, so that a new approach's fields are checked without editing this file), the
seeds, run_multi's Slurm values and file names, plot_results' figure size; and an approach built in code against the
same bounds."""
import dataclasses
import math
import re
import subprocess
import sys

import pytest

from approaches import hat, random, sgd
from approaches._base import Loop
from networks import mlp, mlp_hat
import plot_results
from plumbing import hparams, utils
import run
import run_multi
from conftest import ROOT
from fixtures import assert_one_line_error, cli, make_appr

APPROACHES = utils.module_choices('approaches')
RUN = ['--experiment', 'mnist2']
SWEEP = ['--experiments', 'mnist2', '--approaches', 'hat']
FIGURE = ['matrix', 'res/x.txt', '--output', 'fig.png']
FORGETTING = ['forgetting', '--experiment', 'mnist2', '--approaches', 'hat', '--output', 'fig.png']


def declarations() -> list[tuple[str, type]]:
    """(approach whose command line shows the fields, dataclass): every approach's Hyper, and the Loop once."""
    return [(name, utils.load_module('approaches', name).Appr.Hyper) for name in APPROACHES] + [('sgd', Loop)]


def base_type(field: dataclasses.Field) -> type:
    return field.metadata.get('type') or type(field.default)


def numbers() -> list[tuple[str, type, dataclasses.Field]]:
    """(approach, dataclass, field) for every declared int or float field."""
    return [(name, cls, f) for name, cls in declarations() for f in dataclasses.fields(cls)
            if base_type(f) in (int, float)]


def outside(field: dataclasses.Field) -> list[str]:
    """Values just outside each end of the field's bounds: an open end itself, the next number past a closed one, and
    an infinite end for a float."""
    low, high, closed_low, closed_high = hparams.interval(field.metadata['bounds'])
    integer = base_type(field) is int
    values = []
    for end, closed, away in ((low, closed_low, -1), (high, closed_high, 1)):
        if math.isinf(end):
            values += [] if integer else [str(end)]
        elif not closed:
            values.append(str(int(end) if integer else end))
        else:
            values.append(str(int(end) + away if integer else math.nextafter(end, away * math.inf)))
    return values


def case_id(name: str, field: dataclasses.Field, value) -> str:
    return f'{name}-{field.name}={value}'


OUTSIDE = [pytest.param(name, cls, f, v, id=case_id(name, f, v)) for name, cls, f in numbers() for v in outside(f)]
FLOATS = [pytest.param(name, f, id=case_id(name, f, 'nan')) for name, _, f in numbers() if base_type(f) is float]
DEFAULTS = [pytest.param(name, f, id=case_id(name, f, f.default)) for name, _, f in numbers() if f.default is not None]


def refused(parse, argv: list[str], pattern: str) -> None:
    with pytest.raises(utils.UserError, match=pattern):
        parse(argv)


########################################################################################################################
# The declarations


@pytest.mark.parametrize('name,cls,field', [pytest.param(*n, id=f'{n[0]}-{n[2].name}') for n in numbers()])
def test_every_number_declares_bounds_holding_its_default(name, cls, field):
    bounds = field.metadata['bounds']
    assert bounds, f'{cls.__qualname__}.{field.name} ({name}) declares no bounds'
    assert field.default is None or hparams.inside(field.default, bounds)


def test_a_wrong_declaration_fails_at_once():
    with pytest.raises(ValueError, match='lies outside the bounds'):
        hparams.param(0, 'x', bounds='(0, inf)')
    with pytest.raises(ValueError, match='leave an infinite end open'):
        hparams.param(1, 'x', bounds='[1, inf]')
    with pytest.raises(ValueError, match='write an interval'):
        hparams.param(1, 'x', bounds='1..inf')


@pytest.mark.parametrize('name,cls,field,value', OUTSIDE)
def test_flag_refuses_values_outside_the_bounds(name, cls, field, value):
    flag = hparams.flag(field.name)
    refused(run.parse_args, [*RUN, '--approach', name, f'{flag}={value}'],
            f"argument {flag}: must be in {re.escape(field.metadata['bounds'])}, got")


@pytest.mark.parametrize('name,field', FLOATS)
def test_float_flag_refuses_nan(name, field):
    flag = hparams.flag(field.name)
    refused(run.parse_args, [*RUN, '--approach', name, flag, 'nan'], f'argument {flag}: must be in .*, got nan')


@pytest.mark.parametrize('name,field', DEFAULTS)
def test_flag_accepts_the_default(name, field):
    args = run.parse_args([*RUN, '--approach', name, hparams.flag(field.name), str(field.default)])[0]
    assert getattr(args, field.name) == field.default


def generic_legacy(name: str) -> bool:
    """Whether the approach's --parameter is the generic form (hat-test has its own: its named examples below)."""
    appr = utils.load_module('approaches', name).Appr
    return appr.parse_parameter.__func__ is sgd.Appr.parse_parameter.__func__


@pytest.mark.parametrize('name,cls,field,value', [p for p in OUTSIDE if p.values[1] is not Loop
                                                  and p.values[2].metadata['legacy'] and generic_legacy(p.values[0])])
def test_legacy_parameter_refuses_values_outside_the_bounds(name, cls, field, value):
    appr = utils.load_module('approaches', name).Appr
    before = [str(f.default) for f in dataclasses.fields(cls) if f.metadata['legacy']]
    values = before[:appr.parameter_names.index(field.name)] + [value]
    refused(run.parse_args, [*RUN, '--approach', name, '--parameter=' + ','.join(values)],
            rf"--parameter '.*' \({name}\): {field.name} must be in {re.escape(field.metadata['bounds'])}, got")


@pytest.mark.parametrize('name,cls,field,value', OUTSIDE)
def test_validate_refuses_values_outside_the_bounds(name, cls, field, value):
    with pytest.raises(ValueError, match=f'^{field.name} must be in'):
        hparams.validate(cls(**{field.name: base_type(field)(value)}))


def test_approach_built_in_code_is_checked():
    with pytest.raises(ValueError, match=r'smax must be in \[1, inf\), got 0.5'):
        make_appr(hat.Appr, mlp_hat.Net([1, 28, 28], [(0, 2)]), smax=0.5)
    with pytest.raises(ValueError, match=r'lr_patience must be in \[1, inf\), got 0'):
        make_appr(sgd.Appr, mlp.Net([1, 28, 28], [(0, 2)]), lr_patience=0)
    with pytest.raises(ValueError, match='emb_init must be one of normal, uniform'):
        make_appr(hat.Appr, mlp_hat.Net([1, 28, 28], [(0, 2)]), emb_init='zeros')
    with pytest.raises(ValueError, match='lr must be in'):
        make_appr(sgd.Appr, mlp.Net([1, 28, 28], [(0, 2)]), lr=math.nan)
    # None where the default is None means the default: the evaluation batch size, the approach's clipgrad (random
    # builds no optimizer, whose first build imports much of torch)
    appr = make_appr(random.Appr, mlp.Net([1, 28, 28], [(0, 2)]), eval_batch_size=None, clipgrad=None)
    assert appr.loop.clipgrad == random.Appr.clipgrad


def test_help_shows_the_bounds():
    parser = run.build_parser(utils.module_choices('dataloaders'), APPROACHES)
    hat.Appr.add_arguments(parser)
    text = ' '.join(parser.format_help().split())
    assert '(default: 0.05; in (0, inf))' in text
    assert '(default: 400; in [1, inf); original grid 25, 50' in text


########################################################################################################################
# The named examples, the seeds, --pc-valid


@pytest.mark.parametrize('argv,message', [
    (['--approach', 'hat', '--smax=-5'], r'argument --smax: must be in \[1, inf\), got -5.0'),
    (['--approach', 'hat', '--smax', '0'], r'argument --smax: must be in \[1, inf\), got 0.0'),
    (['--approach', 'sgd', '--clipgrad=-1'], r'argument --clipgrad: must be in \(0, inf\), got -1.0'),
    (['--approach', 'sgd', '--lr', '0'], r'argument --lr: must be in \(0, inf\), got 0.0'),
    (['--approach', 'sgd', '--lr=-0.05'], r'argument --lr: must be in \(0, inf\), got -0.05'),
    (['--approach', 'sgd', '--lr', 'nan'], r'argument --lr: must be in \(0, inf\), got nan'),
    (['--approach', 'sgd', '--lr-factor', '0'], r'argument --lr-factor: must be in \[1, inf\), got 0.0'),
    (['--approach', 'sgd', '--seed=-1'], r'argument --seed: a seed must be in \[0, 2\*\*32 - 1\]'),
    (['--approach', 'sgd', '--seed', str(2**32)], rf'argument --seed: .* got {2**32}'),
    (['--approach', 'sgd', '--seed', '1.5'], "argument --seed: must be a whole number, got '1.5'"),
    (['--approach', 'sgd', '--nepochs', '1.5'], "argument --nepochs: must be a whole number, got '1.5'"),
    (['--approach', 'hat', '--parameter', '0.75,big'], r"\(hat\): smax must be a number, got 'big'"),
    (['--approach', 'sgd', '--pc-valid', '1'], r'argument --pc-valid: must be in \[0, 1\), got 1.0'),
    (['--approach', 'sgd', '--pc-valid=-0.1'], r'argument --pc-valid: must be in \[0, 1\)'),
    (['--approach', 'sgd', '--pc-valid', 'nan'], r'argument --pc-valid: must be in \[0, 1\), got nan'),
    (['--approach', 'hat', '--parameter', '0.75,0'], r"--parameter '0.75,0' \(hat\): smax must be in \[1, inf\)"),
    (['--approach', 'hat-test', '--parameter', '0.75,nan'], r'\(hat-test\): smax must be in \[1, inf\), got nan'),
    (['--approach', 'hat-test', '--parameter=-1,400'], r'\(hat-test\): lamb must be in \[0, inf\), got -1.0'),
    (['--approach', 'hat-test', '--parameter', '0.75,400,log,inf'], r"single_task must be 0 or 1, got 'inf'"),
    (['--approach', 'hat-test', '--parameter', '0.75,400,log,yes'], r"single_task must be 0 or 1, got 'yes'"),
])
def test_named_examples_refused(argv, message):
    refused(run.parse_args, [*RUN, *argv], message)


def test_seed_and_pc_valid_ends_accepted():
    args = run.parse_args([*RUN, '--approach', 'sgd', '--seed', str(2**32 - 1), '--pc-valid', '0'])[0]
    assert (args.seed, args.pc_valid) == (2**32 - 1, 0)
    assert utils.parse_seeds(f'0,{2**32 - 2}-{2**32 - 1}') == [0, 2**32 - 2, 2**32 - 1]


@pytest.mark.parametrize('parse,argv', [(run_multi.parse_args, SWEEP), (plot_results.parse_args, FORGETTING)])
def test_seed_lists_refuse_seeds_outside_numpys_range(parse, argv):
    refused(parse, [*argv, '--seeds', f'0-{2**32}'], rf'argument --seeds: a seed must be in .* got {2**32}')
    refused(parse, [*argv, '--seeds', f'0-{2**32 - 1}'], r'argument --seeds: .* more than 100000 seeds')


########################################################################################################################
# run_multi: Slurm values, --name, --grid


@pytest.mark.parametrize('argv,message', [
    (['--time', '1:2:3:4'], "argument --time: '1:2:3:4' is not a Slurm time"),
    (['--time', '12:00:00\n#SBATCH --x'], 'is not a Slurm time'),
    (['--time', '1 day'], 'is not a Slurm time'),
    (['--mem', '0'], "argument --mem: '0': give a positive whole number"),
    (['--mem', '16GB'], "argument --mem: '16GB'"),
    (['--mem=-1'], "argument --mem: '-1'"),
    (['--job-name', 'a/b c'], r"argument --job-name: 'a/b c': give a name without whitespace"),
    (['--job-name', 'x\n#SBATCH --account=other'], r"argument --job-name: 'x\\n#SBATCH"),
    (['--job-name', ''], 'argument --job-name'),
    (['--job-name', 'a%j'], 'argument --job-name'),
    (['--partition', 'gpu queue'], 'argument --partition'),
    (['--sbatch-option=account=abc'], "argument --sbatch-option: 'account=abc': give one sbatch option"),
    (['--sbatch-option=--a=1\n#SBATCH --b=2'], 'argument --sbatch-option'),
    (['--name', 'a/b'], "argument --name: 'a/b' holds '/'"),
    (['--name', 'my run'], 'argument --name: .* whitespace'),
    (['--name', '.hidden'], "argument --name: '.hidden' starts with '.'"),
    (['--name', ''], "argument --name: '' is empty"),
    (['--grid', 'lamb=0.5,,1'], r"--grid 'lamb=0.5,,1': the value '' is empty"),
    (['--grid', 'monitor-path=../x'], "the value '../x' holds '/' or '..'"),
    (['--grid', 'lamb=1\n2'], 'whitespace or a control character'),
    (['--grid', 'la mb=1'], 'use flag=value'),
])
def test_sweep_values_refused(argv, message):
    refused(run_multi.parse_args, [*SWEEP, *argv], message)


def test_sweep_values_accepted():
    for time in ('90', '90:30', '12:00:00', '2-0', '2-12:30', '2-12:30:00', 'infinite', 'UNLIMITED'):
        assert run_multi.parse_args([*SWEEP, '--time', time]).time == time
    for mem in ('16G', '500', '2048M', '1t', '64k'):
        assert run_multi.parse_args([*SWEEP, '--mem', mem]).mem == mem
    args = run_multi.parse_args([*SWEEP, '--job-name', 'hat-sweep_2', '--partition', 'gpu,long', '--name', 'hat-v2',
                                 '--sbatch-option=--account=abc def', '--grid', 'lamb=.5,0.75'])
    assert (args.job_name, args.partition, args.name, args.sbatch_option) == ('hat-sweep_2', 'gpu,long', 'hat-v2',
                                                                              ['--account=abc def'])


########################################################################################################################
# plot_results: a figure too large to draw


@pytest.mark.parametrize('argv,message', [
    (['--size', '700,4'], 'at --dpi 100 makes an image of 2[*][*]16 pixels or more a side'),
    (['--size', '6,4', '--dpi', '20000'], 'too large to draw'),
    (['--size', '6,4', '--dpi', '1' + '0' * 400], 'too large to draw'),
    (['--size', 'inf,4'], "--size 'inf,4': width and height must be positive numbers"),
    (['--size', '6,nan'], 'must be positive numbers'),
])
def test_figure_size_refused(argv, message):
    refused(plot_results.parse_args, [*FIGURE, *argv], message)


def test_figure_size_accepted():
    assert plot_results.parse_args([*FIGURE, '--size', '655,4', '--dpi', '100']).size == (655, 4)


########################################################################################################################
# As commands: one line, exit status 2


def test_run_refuses_in_one_line(tmp_path):
    assert_one_line_error(cli(*RUN, '--approach', 'sgd', '--lr=-0.05', '--results-dir', str(tmp_path)),
                          'argument --lr: must be in (0, inf), got -0.05')
    assert list(tmp_path.iterdir()) == []


def test_run_multi_refuses_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / 'src' / 'run_multi.py'), *SWEEP, '--backend', 'slurm',
                           '--write-only', '--logs-dir', str(tmp_path), '--job-name', 'x\n#SBATCH --account=other'],
                          capture_output=True, text=True)
    assert_one_line_error(proc, 'argument --job-name')
    assert list(tmp_path.iterdir()) == []


def test_durations_are_printed_in_a_fitting_unit():
    from plumbing import logs
    assert [logs.duration(s) for s in (0.04, 42, 59.96, 70.4, 3599, 3599.6, 7500)] == [
        '0.0 s', '42.0 s', '1 min 0 s', '1 min 10 s', '59 min 59 s', '1 h 00 min', '2 h 05 min']


def test_printed_lines_say_their_units_and_where_files_go(data_dir, tmp_path, capsys):
    """The epoch line names its two times (training, and the evaluation of the training set, in ms per batch), the
    elapsed time has a unit that fits it, and hat --monitor says where it saved the monitoring log."""
    run.main(['--data-dir', str(data_dir), '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'),
              '--device', 'cpu', *RUN, '--approach', 'hat', '--monitor', '--dry-run'])
    out = capsys.readouterr().out
    assert re.search(r'^\| Epoch   1, train +[0-9.]+ ms/batch, eval +[0-9.]+ ms/batch \| Train: loss=', out, re.M), out
    assert re.search(r'^\[Elapsed time = [0-9.]+ s\]$', out, re.M)
    pkz = tmp_path / 'logs' / 'mnist2_hat_0_dryrun_masks.pkz'
    assert f'Saved the monitoring log (per-epoch values and masks) at {pkz}\n' in out and pkz.is_file()
