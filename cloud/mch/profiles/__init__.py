"""Platform profiles: ``reference.toml`` is the complete reference; deployments load their own."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from cloud.mch.errors import MchError
from protocol.mch.profile import Profile, ProfileError

REFERENCE = Path(__file__).resolve().parent / "reference.toml"


def load_profile(path: str | Path | None) -> Profile:
    """Load a profile file (the reference one when ``path`` is empty); MchError names the file and fix."""
    p = Path(path) if path else REFERENCE
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
        return Profile.from_mapping(data, str(p))
    except OSError as exc:
        raise MchError(f"[mch] profile: cannot read {p}: {exc.strerror}.\n  Fix: point profile at a copy of "
                       f"{REFERENCE}, or set profile = \"\" for the reference profile") from exc
    except tomllib.TOMLDecodeError as exc:
        raise MchError(f"[mch] profile: {p} is not valid TOML: {exc}.\n  Fix: check that line") from exc
    except ProfileError as exc:
        raise MchError(f"[mch] profile: {exc}") from exc


@functools.cache
def reference_profile() -> Profile:
    """The reference profile (cached)."""
    return load_profile(None)
