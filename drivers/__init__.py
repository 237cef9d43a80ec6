"""Device drivers: one module per device family.

Each family has a pure codec (bytes -> Readings or a typed error, no asyncio) and a thin
transport adapter (serial, BLE, Modbus, MQTT). Imports only ``protocol``.
"""
