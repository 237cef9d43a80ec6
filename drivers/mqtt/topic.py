"""MQTT topic filters (MQTT 3.1.1 §4.7): validation and matching with captured wildcards.

>>> match("clinic/+/measurement", "clinic/bp-3/measurement")
('bp-3',)
>>> match("clinic/#", "clinic/bp-3/measurement")
('bp-3/measurement',)
>>> match("clinic/+/measurement", "clinic/bp-3/status") is None
True
"""

from __future__ import annotations


def check_filter(pattern: str) -> None:
    """Raise ValueError when ``pattern`` is not a valid MQTT topic filter."""
    if not pattern or len(pattern.encode()) > 65535:
        raise ValueError("a topic filter must be 1..65535 bytes")
    if "\x00" in pattern:
        raise ValueError("a topic filter must not contain NUL")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"'#' must be a whole level and the last one: {pattern!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level: {pattern!r}")


def match(pattern: str, topic: str) -> tuple[str, ...] | None:
    """The levels matched by the wildcards of ``pattern``, or None when ``topic`` does not match.

    A ``#`` captures the rest of the topic as one string. Topics starting with ``$`` match
    only patterns that start with the same literal level (MQTT 3.1.1 §4.7.2).
    """
    p_levels = pattern.split("/")
    t_levels = topic.split("/")
    if topic.startswith("$") and p_levels[0] in ("+", "#"):
        return None
    captured: list[str] = []
    for i, p in enumerate(p_levels):
        if p == "#":
            captured.append("/".join(t_levels[i:]))
            return tuple(captured)
        if i >= len(t_levels):
            return None
        if p == "+":
            captured.append(t_levels[i])
        elif p != t_levels[i]:
            return None
    return tuple(captured) if len(t_levels) == len(p_levels) else None
