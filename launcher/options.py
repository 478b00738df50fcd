"""The launchers' flags: the original scripts' ``-x VALUE`` / ``--name VALUE`` pairs, ``True``/``False``
values, ``--dry_run`` and ``--help`` without one, and the usage text, from one table per launcher."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BOOL_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class UsageError(ValueError):
    """A bad flag: one ``error:`` line, then the usage, exit code 2."""


class HelpRequested(Exception):
    pass


@dataclass(frozen=True)
class Flag:
    """One flag. ``kind``: str, int, count (a positive whole number), number or bool (True/False in any case, as
    the original scripts wrote them). ``default``: a value, or a function of the launcher's context; None
    means "not passed on" or "decided by the plan", which ``default_text`` then describes. Values stay the
    strings given, so a command gets exactly what was typed."""
    names: tuple[str, ...]
    dest: str
    help: str
    kind: str = "str"
    default: Any = None
    metavar: str = ""
    default_text: Any = None  # a string or a function of the context
    invalid: str | None = None  # the error of a bad value, formatted with flag= and value=

    def default_value(self, context) -> Any:
        return self.default(context) if callable(self.default) else self.default

    def described_default(self, context) -> str:
        if self.default_text is not None:
            return self.default_text(context) if callable(self.default_text) else self.default_text
        value = self.default_value(context)
        if self.kind == "bool":
            return "True" if value else "False"
        return "" if value is None else str(value)


def check_value(flag: Flag, given_as: str, value: str):
    """The value as the command will get it (bools: True/False), or UsageError."""
    if flag.kind == "bool":
        if value.lower() not in BOOL_VALUES:
            raise UsageError(f"{given_as} takes True or False, got '{value}'")
        return BOOL_VALUES[value.lower()]
    ok = {"str": lambda v: True, "int": lambda v: v.lstrip("-").isdigit(), "count": lambda v: v.isdigit() and int(v) > 0,
          "number": _is_number}[flag.kind](value)
    if not ok:
        what = {"int": "a whole number", "count": "a positive whole number", "number": "a number"}[flag.kind]
        raise UsageError((flag.invalid or "{flag} takes " + what + ", got '{value}'").format(flag=given_as,
                                                                                             value=value))
    return value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def parse(flags: list[Flag], argv: list[str]) -> tuple[dict[str, Any], bool]:
    """(the given values by dest, --dry_run). An unknown flag is reported before a missing value, and a value
    that is another option is none (it would swallow --dry_run and run for real)."""
    by_name = {name: flag for flag in flags for name in flag.names}
    given, dry_run, i = {}, False, 0
    while i < len(argv):
        word = argv[i]
        if word in ("-h", "--help"):
            raise HelpRequested()
        if word == "--dry_run":
            dry_run, i = True, i + 1
            continue
        if word not in by_name:
            raise UsageError(f"unknown option '{word}'")
        if i + 1 == len(argv):
            raise UsageError(f"{word} needs a value")
        value = argv[i + 1]
        if value.startswith("--"):
            raise UsageError(f"{word} needs a value, got the option '{value}'")
        flag = by_name[word]
        given[flag.dest] = check_value(flag, word, value)
        i += 2
    return given, dry_run


def with_defaults(flags: list[Flag], given: dict[str, Any], context) -> dict[str, Any]:
    """Every flag's value: as given, else its default in ``context``. Defaults are checked like given values
    (a bad $SLURM_NNODES is an error too)."""
    values = {}
    for flag in flags:
        if flag.dest in given:
            values[flag.dest] = given[flag.dest]
            continue
        value = flag.default_value(context)
        if value is not None and flag.kind not in ("bool", "str"):
            value = check_value(flag, flag.names[-1], str(value))
        values[flag.dest] = value
    return values


def usage(prog: str, description: str, flags: list[Flag], context) -> str:
    lines = [f"usage: {prog} [options]", *description.strip("\n").splitlines()]
    for flag in flags:
        spelled = ", ".join(flag.names) + (f" {flag.metavar}" if flag.metavar else "")
        default = flag.described_default(context)
        text = flag.help + (f" (default {default})" if default else "")
        if len(spelled) < 26:
            lines.append(f"  {spelled:<26}{text}")
        else:
            lines += [f"  {spelled}", f"  {'':<26}{text}"]
    lines += [f"  {'--dry_run':<26}print the commands without running them; warn about paths that do not exist",
              f"  {'-h, --help':<26}this help"]
    return "\n".join(lines)
