"""What several command groups share: the ``--format`` check and the input-file check.

>>> check_format("movielens")
'movielens'
>>> FORMAT_HELP
'jsonl | movielens | retailrocket | otto | taobao'
"""

from __future__ import annotations

from pathlib import Path

import typer

from stream_app.cli.errors import UserError
from stream_app.data.formats import FORMATS, UnknownFormat

FORMAT_HELP = " | ".join(FORMATS)


def check_format(fmt: str) -> str:
    """``fmt`` when it is one of the dataset formats; a usage error (exit status 2) otherwise."""
    if fmt not in FORMATS:
        raise typer.BadParameter(str(UnknownFormat(fmt)), param_hint="--format")
    return fmt


def require_file(path: Path) -> Path:
    """``path`` when it exists; a one-line user error (exit status 1) otherwise."""
    if not path.exists():
        raise UserError(f"no such file: {path}")
    return path
