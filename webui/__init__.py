"""Shared web layer for the hub's pages (kiosk, status) and the cloud's (dashboard, admin).

    i18n      zh-CN first, English on every page: message catalogs and language choice
    sessions  server-side sessions with an opaque cookie, idle timeout, CSRF token
    security  middleware: sessions, CSRF on every unsafe request, security headers;
              ``require`` for role checks; ``LoginThrottle`` for brute-force lockout
    render    Jinja2 environment (autoescaped) with the base layout and static assets

Imports only ``protocol``; ``edge`` and ``cloud`` both use it.
"""
