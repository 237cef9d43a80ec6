"""The driver registry: one table of kinds, kept equal to the families' ``DRIVERS``, imported lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

from drivers import registry


def test_the_kind_table_names_every_familys_drivers_and_nothing_else() -> None:
    declared = {kind: module for module in registry._MODULES
                for kind in getattr(importlib.import_module(module), "DRIVERS", {})}
    assert declared == registry.KIND_MODULES


def test_a_factory_is_the_same_object_every_time_and_builds_the_familys_driver() -> None:
    assert registry.driver_kinds()["idcard"] is registry.driver_kinds()["idcard"]
    driver = registry.driver_kinds()["idcard"]("card-1", {"address": "/dev/ttyUSB9"})
    assert type(driver).__module__.startswith("drivers.idcard")


def test_listing_the_kinds_imports_no_driver_family() -> None:
    code = ("import sys; from drivers.registry import driver_kinds; kinds = driver_kinds(); "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['drivers', f] for f in "
            "('ble', 'modbus', 'mqtt', 'idcard', 'stations'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
