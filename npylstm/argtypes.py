"""What the command lines (train, study, golden, charlm) share: argument types and errors.

argparse calls a type on the text of one argument; an ArgumentTypeError becomes
its usual "argument --x: ..." message and exit status 2, never a traceback.
Problems that are not argument syntax (a bad checkpoint, a failed write) go
through ``fail``: one line on stderr and exit status 1.
"""
import argparse
import math
import sys

import numpy as np

DTYPES = ("float32", "float64")          # use as choices=DTYPES


def at_least(minimum):
    """An argparse type: an integer >= minimum."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive_float(text):
    """An argparse type: a finite number > 0."""
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def fraction(text):
    """An argparse type: a number in [0, 1] (a share of something)."""
    value = _number(text)
    if not 0 <= value <= 1:                # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def probability(text):
    """An argparse type: a number in [0, 1) (a dropout rate, say)."""
    value = _number(text)
    if not 0 <= value < 1:                 # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def fail(prog, message):
    """Print ``PROG: error: MESSAGE`` as one line on stderr; return the exit status 1.

    The counterpart of ``parser.error`` (status 2) for problems that are not
    argument syntax: ``return fail(PROG, ...)`` from ``main``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------- config fields
# The dataclass configs (TrainConfig, CharLMConfig, StudyConfig) check their fields with these, so that
# train() and train_charlm() refuse what the command line would refuse, in the same words.

class ConfigError(ValueError):
    """A config setting that cannot run; ``field`` names it (the command line's --field)."""

    def __init__(self, field, message):
        super().__init__(f"{field} {message}")
        self.field, self.message = field, message

    def argument_message(self):
        """The message as argparse words it for the field's option: 'argument --field-name: ...'."""
        return f"argument --{self.field.replace('_', '-')}: {self.message}"


def check_integer(config, name, minimum):
    """ConfigError unless config.<name> is an integer (not a bool) >= minimum."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(name, f"must be {what}, got {value!r}")


def check_positive(config, name):
    """ConfigError unless config.<name> is a finite number > 0."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(value) or value <= 0:
        raise ConfigError(name, f"must be a finite number > 0, got {value!r}")


def check_between(config, name, low, high, high_included=True):
    """ConfigError unless config.<name> is a number in [low, high] (or [low, high))."""
    value = getattr(config, name)
    number = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
    if not number or not (low <= value <= high if high_included else low <= value < high):
        raise ConfigError(name, f"must be a number in [{low}, {high}{']' if high_included else ')'}, "
                                f"got {value!r}")
