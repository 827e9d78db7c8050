"""Hyperparameters declared once, as dataclass fields: each field's default, help text (with the paper's symbol) and
place in the original's --parameter a,b,... form give its command-line flag, so nothing is written twice.

    @dataclass
    class Hyper:
        lamb: float = param(5000, 'how important the old tasks are, Eq. 3', symbol='lambda', legacy=True)
"""
import argparse
import dataclasses
from typing import Any


def param(default: Any, help: str, *, symbol: str = '', grid: str = '', type=None, choices: tuple = (),
          legacy: bool = False) -> Any:
    """A dataclass field with what its flag needs: help (after the paper's symbol, with the default and the original's
    grid), the argparse type (default: the default's), choices, and whether --parameter sets it (in field order)."""
    return dataclasses.field(default=default, metadata={
        'help': help, 'symbol': symbol, 'grid': grid, 'type': type, 'choices': choices, 'legacy': legacy})


def like(cls: type, name: str, default: Any, **changes) -> Any:
    """Field `name` of dataclass cls as it is declared there, with another default and any of param()'s keywords
    changed (for a variant of an approach)."""
    declared = {f.name: f for f in dataclasses.fields(cls)}[name]
    return dataclasses.field(default=default, metadata={**declared.metadata, **changes})


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
        notes = (['default: %(default)s'] if default is not None else []) + (
            ['original grid ' + meta['grid']] if meta['grid'] else [])
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
    fields = {f.name: f for f in dataclasses.fields(cls)}
    settings = {}
    for name, value in zip(names, values):
        try:
            settings[name] = _type(fields[name], fields[name].default)(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, got '{value}'") from None
        except argparse.ArgumentTypeError as e:  # a type with a range, as int_at_least
            raise ValueError(f'{name} {e}') from None
    return settings


def _type(field: dataclasses.Field, default: Any):
    return field.metadata['type'] or type(default)
