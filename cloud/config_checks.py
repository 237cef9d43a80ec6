"""Helpers every cloud.toml section check uses: errors that name file, key and fix."""

from __future__ import annotations

from pathlib import Path

from cloud.errors import ConfigError


def err(path: Path, where: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {problem}.\n  Fix: {fix}")


def positive(path: Path, where: str, value: float, hi: float | None = None) -> None:
    if value <= 0 or (hi is not None and value > hi):
        bound = f" and at most {hi:g}" if hi is not None else ""
        raise err(path, where, f"{value} is out of range", f"use a number above 0{bound}")


def file_path(base: Path, value: str) -> Path | None:
    return (Path(value) if Path(value).is_absolute() else base / value) if value else None
