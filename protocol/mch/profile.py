"""Mapping of our case records to one MCH platform's wire format (a *profile*).

A city platform's own case form is not public, so the mapping is data: a profile names,
per kind of case, the platform's field for each of our fields and the platform's code
for each of our codes, plus the platform fields it requires. ``cloud/mch/profiles/
reference.toml`` is the complete reference profile; a deployment copies and edits it.

    [profile]            name, version
    [cases.<type>]       required = [...platform field names...]
    [cases.<type>.fields]   our_field = "platformField"
    [codes.<our_field>]  our_code = "platform_code"   (fields without a table pass codes through)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from protocol.errors import ProtocolError
from protocol.mch.records import Case


class ProfileError(ProtocolError):
    """A profile is malformed, or a record cannot be expressed in it (unmapped code)."""


@dataclass(frozen=True)
class CaseMapping:
    """How one type of case maps."""

    fields: dict[str, str]
    required: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    """A loaded, checked platform profile."""

    name: str
    version: str
    cases: dict[str, CaseMapping]
    codes: dict[str, dict[str, str]]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "profile") -> Profile:
        """Build from parsed TOML; ProfileError names the key that is wrong."""
        try:
            meta = data["profile"]
            cases = {
                kind: CaseMapping(fields=dict(spec["fields"]), required=tuple(spec.get("required", ())))
                for kind, spec in data["cases"].items()
            }
            codes = {field: dict(table) for field, table in data.get("codes", {}).items()}
            profile = cls(str(meta["name"]), str(meta["version"]), cases, codes)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProfileError(
                f"{source}: missing or malformed key {exc}; compare with cloud/mch/profiles/reference.toml"
            ) from exc
        for kind, mapping in profile.cases.items():
            unknown = set(mapping.required) - set(mapping.fields.values())
            if unknown:
                raise ProfileError(f"{source}: cases.{kind}.required names unmapped platform fields {sorted(unknown)}")
        return profile

    def to_platform(self, case: Case) -> dict[str, Any]:
        """The platform's JSON object for ``case``; fields that are None are left out."""
        kind = type(case).__struct_config__.tag
        mapping = self.cases.get(str(kind))
        if mapping is None:
            raise ProfileError(f"profile {self.name} has no mapping for {kind} cases")
        ours = msgspec.to_builtins(case)
        out: dict[str, Any] = {}
        for field, platform_field in mapping.fields.items():
            value = ours.get(field)
            if value is None or value == []:
                continue
            table = self.codes.get(field)
            if table is not None and isinstance(value, str):
                if value not in table:
                    raise ProfileError(f"profile {self.name} has no platform code for {field}={value!r}")
                value = table[value]
            out[platform_field] = value
        missing = [f for f in mapping.required if f not in out]
        if missing:
            raise ProfileError(f"record lacks fields the platform requires: {missing}")
        return out
