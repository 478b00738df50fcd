"""The papers' launchers in Python: plans (``launcher.plans``) built from the original scripts' flags
(``launcher.options``), printed or run by ``launcher.cli``. ``cmds/shell_scrips/*.sh`` hand their arguments here."""
