"""The clinic hub daemon: durable store, driver supervisor, station sessions, sync client,
command channel, status page and kiosk. Never imports ``cloud``."""
