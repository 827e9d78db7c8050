"""Hyperparameters declared once, as dataclass fields: each field's default, help text (with the paper's symbol) and
place in the original's --parameter a,b,... form give its command-line flag, so nothing is written twice.

    @dataclass
    class Hyper:
        lamb: float = param(5000, 'how important the old tasks are, Eq. 3', symbol='lambda', bounds='[0, inf)',
                            legacy=True)

A number's field declares its range by its meaning, an interval in math notation ('(0, inf)', '[1, inf)', '[0, 1)'):
its flag, the legacy form and validate() refuse what lies outside, and a float is never nan nor infinite.
"""
import argparse
import dataclasses
import math
import numbers
import re
from typing import Any

FINITE = '(-inf, inf)'  # the range of a number declared without bounds
_END = r'\s*([-+]?(?:inf|[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?))\s*'  # a number or inf
_INTERVAL = re.compile(rf'([\[(]){_END},{_END}([\])])')


def param(default: Any, help: str, *, symbol: str = '', grid: str = '', type=None, choices: tuple = (),
          bounds: str = '', legacy: bool = False) -> Any:
    """A dataclass field with what its flag needs: help (after the paper's symbol, with the default, the range and the
    original's grid), the argparse type (default: the default's), choices, bounds (the interval a number must lie in,
    e.g. '(0, inf)'; an infinite end is always open) and whether --parameter sets it (in field order)."""
    _check_declaration(default, bounds)
    return dataclasses.field(default=default, metadata={
        'help': help, 'symbol': symbol, 'grid': grid, 'type': type, 'choices': choices, 'bounds': bounds,
        'legacy': legacy})


def like(cls: type, name: str, default: Any, **changes) -> Any:
    """Field `name` of dataclass cls as it is declared there, with another default and any of param()'s keywords
    changed (for a variant of an approach)."""
    declared = {f.name: f for f in dataclasses.fields(cls)}[name]
    metadata = {**declared.metadata, **changes}
    _check_declaration(default, metadata['bounds'])
    return dataclasses.field(default=default, metadata=metadata)


def _check_declaration(default: Any, bounds: str) -> None:
    """A wrong declaration fails at import: malformed bounds, or a default outside them."""
    if bounds:
        interval(bounds)
        if default is not None and not inside(default, bounds):
            raise ValueError(f'the default {default} lies outside the bounds {bounds}')


def flag(name: str) -> str:
    """The command-line flag of a field: lr_min -> --lr-min."""
    return '--' + name.replace('_', '-')


def add_flags(parser, cls: type, names: tuple[str, ...] | None = None, defaults: dict | None = None) -> None:
    """Declare a flag for each field of dataclass cls (or those in names, in that order), with its default unless
    defaults gives another."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names or tuple(fields):
        field, meta = fields[name], fields[name].metadata
        default = (defaults or {}).get(name, field.default)
        help_text = (meta['symbol'] + ', ' if meta['symbol'] else '') + meta['help']
        if isinstance(default, bool):
            parser.add_argument(flag(name), action='store_true', default=default, help=help_text)
            continue
        # A default of None means what the help text says it means
        notes = [note for note, shown in (('default: %(default)s', default is not None),
                                          ('in ' + meta['bounds'], meta['bounds']),
                                          ('original grid ' + meta['grid'], meta['grid'])) if shown]
        parser.add_argument(flag(name), type=_type(field, default), default=default, choices=meta['choices'] or None,
                            help=help_text + (f" ({'; '.join(notes)})" if notes else ''))


def from_args(cls: type, args: argparse.Namespace):
    """An instance of dataclass cls from the parsed flags of its fields."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def legacy_names(cls: type) -> tuple[str, ...]:
    """The fields the original's --parameter a,b,... sets, in its order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get('legacy'))


def parse_legacy(cls: type, values: list[str]) -> dict:
    """{field: value} for the original's --parameter a,b,...: the legacy fields in order, each typed as its flag; a
    ValueError says what is wrong."""
    names = legacy_names(cls)
    if len(values) > len(names):
        raise ValueError(f"takes {','.join(names) if names else 'no values'}")
    return {name: parse_value(cls, name, value) for name, value in zip(names, values)}


def parse_value(cls: type, name: str, text: str) -> Any:
    """Field `name` of dataclass cls from text, typed and checked as its flag; a ValueError says what is wrong."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    try:
        return _type(field, field.default)(text)
    except argparse.ArgumentTypeError as e:  # not a number, or outside the field's bounds
        raise ValueError(f'{name} {e}') from None


def validate(obj) -> None:
    """Check a dataclass instance built in code against its fields' bounds and choices, as their flags would; a
    ValueError names the first field outside them. None stands for the default where the default is None."""
    for field in dataclasses.fields(obj):
        value, meta = getattr(obj, field.name), field.metadata
        if value is None and field.default is None:
            continue
        if meta.get('choices') and value not in meta['choices']:
            raise ValueError(f"{field.name} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        bounds = meta.get('bounds') or (FINITE if isinstance(value, float) else '')
        if bounds and not (isinstance(value, numbers.Real) and not isinstance(value, bool) and inside(value, bounds)):
            raise ValueError(f'{field.name} must be in {bounds}, got {value!r}')


def inside(value: float, bounds: str) -> bool:
    """Whether value lies in the interval bounds, e.g. '[0, 1)' (nan never does)."""
    low, high, closed_low, closed_high = interval(bounds)
    return (low < value or (closed_low and value == low)) and (value < high or (closed_high and value == high))


def interval(bounds: str) -> tuple[float, float, bool, bool]:
    """'[0, inf)' -> (0.0, inf, True, False): the ends, and whether each belongs to the interval."""
    match = _INTERVAL.fullmatch(bounds)
    if match is None:
        raise ValueError(f"bounds '{bounds}': write an interval, e.g. '(0, inf)' or '[1, inf)'")
    low, high = float(match[2]), float(match[3])
    closed_low, closed_high = match[1] == '[', match[4] == ']'
    if (closed_low and math.isinf(low)) or (closed_high and math.isinf(high)) or not low < high:
        raise ValueError(f"bounds '{bounds}': give low < high, and leave an infinite end open")
    return low, high, closed_low, closed_high


def bounded(base: type, bounds: str = '') -> Any:
    """An argparse type: base(text) (int or float), refused when it lies outside bounds (an ArgumentTypeError saying
    the range); a float is refused when nan or infinite, whatever the bounds."""
    def parse(text: str):
        try:
            value = base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'a whole number' if base is int else 'a number'}, got "
                                             f"{text!r}") from None
        allowed = bounds or FINITE
        if (bounds or isinstance(value, float)) and not inside(value, allowed):
            raise argparse.ArgumentTypeError(f'must be in {allowed}, got {value}')
        return value
    return parse


def _type(field: dataclasses.Field, default: Any):
    base = field.metadata['type'] or type(default)
    return bounded(base, field.metadata['bounds']) if base in (int, float) else base
