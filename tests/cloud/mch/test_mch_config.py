"""[mch] in cloud.toml: defaults, resolved paths, and errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import parse
from cloud.errors import ConfigError


def test_disabled_by_default_and_paths_resolved() -> None:
    cfg = parse('[database]\nurl = "sqlite:///c.db"\n', Path("/etc/mchub/cloud.toml"))
    assert not cfg.mch.enabled and cfg.mch.platform_url == "" and cfg.mch.secret_file == "/etc/mchub/mch.secret"
    cfg = parse('[mch]\nenabled = true\nplatform_url = "https://p.example"\napp_key = "k"\nprofile = "p/city.toml"\n'
                'algorithm = "HMAC-SM3"\n', Path("/etc/mchub/cloud.toml"))
    assert cfg.mch.profile == "/etc/mchub/p/city.toml" and cfg.mch.algorithm == "HMAC-SM3"


@pytest.mark.parametrize(("toml", "message"), [
    ('algorithm = "MD5"', r"\[mch\] algorithm: 'MD5' is not supported.*HMAC-SM3"),
    ('platform_url = "ftp://x"', r"\[mch\] platform_url: .* is not an HTTP\(S\) URL"),
    ('platform_url = "https://x"', r"\[mch\] app_key: is empty but platform_url is set"),
    ("rate_per_s = 0", r"\[mch\] rate_per_s: 0 is out of range"),
    ("rate = 5", r"\[mch\] rate: unknown key.*known keys: .*rate_per_s"),
    ('enabled = "yes"', r"\[mch\] enabled: 'yes' is a str, expected bool"),
])
def test_errors_name_key_and_fix(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match="(?s)" + message) as err:
        parse(f"[mch]\n{toml}\n", Path("cloud.toml"))
    assert "Fix:" in str(err.value)
