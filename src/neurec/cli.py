"""The project's `kedro run` (also `python -m neurec`): Kedro's own run command, except that an
expected error (a `NeurecError`: a bad parameter or input file; or a missing `conf/<env>`) ends
the run with its one-line message and exit status 1 instead of a traceback. Bugs keep their
full traceback, and so does an expected error with `--verbose` or `NEUREC_TRACEBACK=1`.

Kedro picks this `run` up by itself: `kedro` loads `<package>.cli.cli` as the project's commands
(overriding its built-in `run`), and `find_run_command`, used by `python -m neurec`, returns
`<package>.cli.run`.
"""

from __future__ import annotations

import os
from typing import Any

import click
from kedro.config import MissingConfigException
from kedro.framework.cli import command_with_verbosity
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.cli.utils import CONTEXT_SETTINGS, KedroCliError

from neurec.errors import NeurecError

TRACEBACK_VARIABLE = "NEUREC_TRACEBACK"


@click.group(context_settings=CONTEXT_SETTINGS, name="neurec")
def cli() -> None:
    """Commands of the neurec project."""


# Kedro's own options and help, plus Kedro's `--verbose/-v` flag (as on `kedro pipeline create`):
# its callback records it in `KedroCliError.VERBOSE_ERROR` and hands the command None.
@command_with_verbosity(cli, "run", params=list(kedro_run.params), help=kedro_run.help)
def run(verbose: None, **options: Any) -> dict[str, Any]:
    try:
        return kedro_run.callback(**options)
    except Exception as error:
        if KedroCliError.VERBOSE_ERROR or _traceback_requested() or not _is_expected(error):
            raise
        raise click.ClickException(
            f"{error}\n(run with --verbose or {TRACEBACK_VARIABLE}=1 for the traceback)"
        ) from error


def _traceback_requested() -> bool:
    return os.environ.get(TRACEBACK_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _is_expected(error: BaseException | None) -> bool:
    """A NeurecError or Kedro's missing configuration (``--env nosuch``: its message names the
    folder), or an error raised from one (Kedro wraps a dataset's error in its own)."""
    while error is not None:
        if isinstance(error, NeurecError | MissingConfigException):
            return True
        error = error.__cause__
    return False
