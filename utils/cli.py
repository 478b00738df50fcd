"""Command-line help shared by the scripts."""
from __future__ import annotations

import argparse
import math


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks (its examples) and shows every option's default: an option whose
    help does not already state it gets ``(default: X)`` appended."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or "default" in text.lower()):
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, ``error: <message> (see <prog> --help)``, exit 2:
    the scripts have dozens of flags, and a usage dump of 35 lines buries the one that was wrong."""

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(message.split())} (see {self.prog} --help)\n")


def number_errors(args, positive=(), non_negative=(), finite_positive=(), finite_non_negative=(),
                  unit_interval=()) -> list[str]:
    """One message per flag of ``args`` whose number is out of its range (``unit_interval``: [0, 1))."""
    value = lambda name: getattr(args, name)
    finite = lambda name: isinstance(value(name), (int, float)) and math.isfinite(value(name))
    return ([f"--{n} must be positive, got {value(n)}" for n in positive if value(n) <= 0]
            + [f"--{n} must be >= 0, got {value(n)}" for n in non_negative if value(n) < 0]
            + [f"--{n} must be a finite number > 0, got {value(n)}" for n in finite_positive
               if not (finite(n) and value(n) > 0)]
            + [f"--{n} must be a finite number >= 0, got {value(n)}" for n in finite_non_negative
               if not (finite(n) and value(n) >= 0)]
            + [f"--{n} must be in [0, 1), got {value(n)}" for n in unit_interval
               if not (finite(n) and 0 <= value(n) < 1)])
