"""What every command shares: exit codes and the mapping of library errors to one-line messages."""
from __future__ import annotations

import functools
import sys

import click

EXIT_OK = 0
EXIT_SOME_INPUTS_FAILED = 1
EXIT_USAGE = 2  # bad option, bad model/bundle/checkpoint, unwritable output (click's usage errors use 2 too)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM


class UserError(click.ClickException):
    """`Error: <one line>`, exit 2; control characters in the message (from file names, manifests, configs) are
    escaped, so the line stays one line and no escape sequence reaches the terminal."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str):
        from munit_rt.text import printable

        super().__init__(printable(str(message), control=True))


def echo_text(text: str, err: bool = False) -> None:
    """Print lines that may hold text from files (names, manifest or config values): each line's control
    characters escaped (the callers escape values that could hold a newline before joining lines)."""
    from munit_rt.text import printable

    click.echo("\n".join(printable(line, control=True) for line in str(text).split("\n")), err=err)


class BundlePath(click.Path):
    """click.Path that also takes the name of an installed model (`default`, munit_rt.models): a name that is no
    existing path resolves to the installed bundle; anything else is checked as click.Path checks it (the same
    "does not exist" error for a path that is no installed name either)."""

    def convert(self, value, param, ctx):
        import os

        if isinstance(value, str) and value and not os.path.lexists(value):
            from munit_rt.models import default_model_path

            installed = default_model_path(value)
            if installed is not None:
                value = str(installed)
        return super().convert(value, param, ctx)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from munit_rt.errors import MunitRtError

    types: list[type[BaseException]] = [MunitRtError]
    training_errors = sys.modules.get("munit_rt.training.errors")  # only if a torch-side command loaded it
    if training_errors is not None:
        types.append(training_errors.TrainingError)
    export_errors = sys.modules.get("munit_rt.export.errors")
    if export_errors is not None:
        types.append(export_errors.ExportError)
    return tuple(types)


def friendly_errors(func):
    """Turn library errors into `Error: <one line>` with exit code 2, and Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - narrowed below
            if isinstance(exc, _user_error_types()):
                raise UserError(str(exc)) from None
            raise

    return wrapper


def require(module: str, extra: str):
    """Import a heavy optional module or fail with the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"this command needs '{module}' ({exc}); install it with: pip install 'munit-rt[{extra}]'") from None


def command_line(overrides: dict | None = None) -> str:
    """The command being run, rebuilt from what was given on the command line (shell-quoted), with `overrides`
    (param name -> value) applied: how to say "run this to resume"."""
    import shlex

    from click.core import ParameterSource

    ctx = click.get_current_context()
    overrides = overrides or {}
    words, arguments = ["munit-rt", ctx.info_name], []
    for param in ctx.command.params:
        given = ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE
        value = overrides.get(param.name, ctx.params.get(param.name))
        if param.name in overrides and value == param.default and not given:
            continue
        if not (given or param.name in overrides) or value is None:
            continue
        if isinstance(param, click.Argument):
            arguments += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        elif param.is_flag and param.secondary_opts:
            words.append(_long(param.opts) if value else _long(param.secondary_opts))
        elif param.is_flag:
            if value:
                words.append(_long(param.opts))
        else:
            for item in (value if param.multiple else [value]):
                words += [_long(param.opts), str(item)]
    return shlex.join(words + arguments)


def _long(opts: list[str]) -> str:
    return next((o for o in opts if o.startswith("--")), opts[0])
