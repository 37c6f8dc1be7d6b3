"""Reading our JSON records back into dataclasses: one converter per field, in a table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

FieldConverters = Mapping[str, Callable[[Any], Any]]
"""Field name -> the function that turns its JSON value back into the field's type."""


def read_fields(data: Mapping[str, Any], converters: FieldConverters) -> dict[str, Any]:
    """Each field named in ``converters``, read from ``data`` and converted, in table order.

    The result is the keyword arguments that rebuild the dataclass the record came from.

    Raises:
        KeyError: a field is missing.
        TypeError, ValueError: a value is malformed (what its converter raises); callers
            report these as their own error.
    """
    return {name: convert(data[name]) for name, convert in converters.items()}


def tuple_of(convert: Callable[[Any], T]) -> Callable[[Any], tuple[T, ...]]:
    """The converter of a JSON list: ``convert`` applied to every item, kept as a tuple."""
    return lambda values: tuple(convert(value) for value in values)


def record_reader(make: Callable[..., T], converters: FieldConverters) -> Callable[[Any], T]:
    """The converter of a nested record: its fields read with ``converters``, then ``make``."""
    return lambda data: make(**read_fields(data, converters))
