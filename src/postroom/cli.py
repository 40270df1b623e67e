"""The ``postroom`` command: the application, its global options (``--config`` before the
command, ``--version``) and the entry point; each command lives in :mod:`postroom.commands`.
Thin: parsing, printing and exit codes; the work is elsewhere.

Exit codes: 0 success, 1 the operation ran and failed, 2 bad usage or invalid input/config.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from typing import Annotated

import typer

from postroom.commands import (
    deliverability,
    diagnose,
    listener,
    messages,
    oauth,
    run,
    send,
    suppressions,
    templates,
)
from postroom.commands.common import CONFIG_ENV, ConfigOpt, err, labelled
from postroom.text import data_problem

app = typer.Typer(
    name="postroom",
    help="Postroom: the email courier for identity systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"postroom {version('postroom')}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    config: ConfigOpt = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print Postroom's version and exit.",
        ),
    ] = False,
) -> None:
    """Postroom: the email courier for identity systems. `--config FILE` works before the
    command too (`postroom --config postroom.yaml send ...`)."""
    if config is None:
        return
    # Every command's --config reads POSTROOM_CONFIG: the file given before the command
    # reaches it that way, and the environment is put back when the command ends.
    previous = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = str(config)

    def restore() -> None:
        if previous is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = previous

    ctx.call_on_close(restore)


for register in (
    send.register,
    run.register,
    messages.register,
    diagnose.register,
    oauth.register,
    listener.register,
    deliverability.register,
    templates.register,
    suppressions.register,
):
    register(app)


def _refuse_undecodable(argv: list[str]) -> None:
    """Exit 2 naming the option when an argument is not UTF-8 (Python holds such bytes as
    lone surrogates, which no database, header or terminal takes)."""
    for index, arg in enumerate(argv):
        found = data_problem(arg)
        if found is None:
            continue
        if arg.startswith("-"):
            option = arg.split("=", 1)[0]
        elif index and argv[index - 1].startswith("-"):
            option = argv[index - 1]
        else:
            option = f"argument {index + 1}"
        err.print(labelled("error: ", f"{option}: {found[1]}", label_style="bold red"))
        sys.exit(2)


def main() -> None:
    """Console-script entry point."""
    _refuse_undecodable(sys.argv[1:])
    app()


if __name__ == "__main__":
    main()
