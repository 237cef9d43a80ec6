"""The cloud's process: the ASGI app, `mchub cloud serve`, logs, metrics, the OpenAPI document, off-loop work."""
