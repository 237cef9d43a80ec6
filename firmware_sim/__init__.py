"""Simulators of everything outside mchub: device firmware speaking the real wire bytes,
ID cards, a fleet of hubs, and the hospital-side peers (HIS over MLLP, PACS, MCH platform).

A simulator encodes from the specification on its own: it never imports a driver."""
