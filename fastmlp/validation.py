"""Declarative parameter validation: each public dataclass says what its fields may hold, once.

As scikit-learn's ``_parameter_constraints``: a class lists ``{field: constraint}``, and ``validate`` checks an
object's fields against them with one message format, ``"<name> must be <what>, got <value>"`` (choices:
``"unknown <name> <value>; choose one of: ..."``). ``train_batch`` checks its per-network arrays, and ``grid`` its
axes, against the same constraints, so a value is refused with the same words wherever it comes in.
"""
from __future__ import annotations

import math
import numbers


def _fmt(x):
    return f"{x:g}" if isinstance(x, float) else str(x)


class Interval:
    """A real number in an interval; ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``.

    Always finite (NaN and infinities are refused: they are never a meaningful setting)."""

    def __init__(self, low=None, high=None, closed="both"):
        self.low, self.high, self.closed = low, high, closed

    def describe(self):
        lo_closed = self.closed in ("both", "left")
        hi_closed = self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            return (f"in {'[' if lo_closed else '('}{_fmt(self.low)}, {_fmt(self.high)}"
                    f"{']' if hi_closed else ')'}")
        if self.low is not None:
            return f"{'>=' if lo_closed else '>'} {_fmt(self.low)}"
        if self.high is not None:
            return f"{'<=' if hi_closed else '<'} {_fmt(self.high)}"
        return "finite"

    def contains(self, v):
        if self.low is not None and (v < self.low or (v == self.low and self.closed not in ("both", "left"))):
            return False
        if self.high is not None and (v > self.high or (v == self.high and self.closed not in ("both", "right"))):
            return False
        return True

    def check(self, name, value):
        """``value`` as a float, or ``ValueError`` naming ``name``, the interval and the value."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {value!r}")
        if not self.contains(v):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return v


class Integral:
    """An integer (not a bool) ``>= low``."""

    def __init__(self, low=1):
        self.low = low

    def describe(self):
        return "a positive integer" if self.low == 1 else f"an integer >= {self.low}"

    def check(self, name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) and not hasattr(value, "__index__"):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        if int(value) < self.low:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return int(value)


class Options:
    """One of a fixed tuple of choices."""

    def __init__(self, choices):
        self.choices = tuple(choices)

    def describe(self):
        return "one of: " + ", ".join(map(str, self.choices))

    def check(self, name, value):
        if value not in self.choices:
            raise ValueError(f"unknown {name} {value!r}; choose {self.describe()}")
        return value


class Optional:
    """``None``, or what ``inner`` accepts."""

    def __init__(self, inner):
        self.inner = inner

    def describe(self):
        return f"None or {self.inner.describe()}"

    def check(self, name, value):
        return None if value is None else self.inner.check(name, value)


def validate(obj, constraints, names=None):
    """Check each field of ``obj`` named in ``constraints`` (``{field: constraint}``); ``names`` gives the words
    a message uses for a field (default: the field's name). Returns nothing; raises ``ValueError``."""
    names = names or {}
    for field, constraint in constraints.items():
        constraint.check(names.get(field, field), getattr(obj, field))
