"""`--engine` for the batch commands: which engine runs a job, from the flag or the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuijian.config import ConfigError, Settings
from tuijian.jobs.engine import Engine, open_engine

EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="duckdb (embedded), spark (local[*]), local[N] or spark://HOST:PORT; "
                     "default: TUIJIAN_BATCH_ENGINE, else duckdb.")]


def batch_engine(data: Path, spec: str | None) -> Engine:
    """The engine over `data`'s event log; a bad spec exits 2 naming the setting."""
    try:
        settings = Settings.from_env(data_dir=data, batch_engine=spec)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    return open_engine(settings.batch_engine, data / "events")
