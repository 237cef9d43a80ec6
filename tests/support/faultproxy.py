"""The fault proxy moved into the product (``firmware_sim.faultproxy``, used by ``mchub demo``)."""

from firmware_sim.faultproxy import FaultProxy, Mode, Stats

__all__ = ["FaultProxy", "Mode", "Stats"]
