"""uvicorn's server for a process that serves in its own event loop (the hub), without uvicorn's command line.

``import uvicorn`` runs the package's ``__init__``, which imports ``uvicorn.main``: click, the
multiprocessing supervisors and the reloader, none of which an embedded server calls: 27 modules
and 2.9 MB of resident memory in a bare interpreter, 1.3 MB on the soak rig's hub (which needs part
of them anyway), kept for as long as it runs (issue 21: at most 60 MB with every driver kind).
:func:`load` makes ``uvicorn`` a plain package whose submodules import as usual, then imports only the
server, its configuration and the HTTP protocol::

    Config, Server = embedded_uvicorn.load()   # before anything else imports uvicorn
    from webui import conn_guard               # uvicorn.protocols.http.h11_impl, also without click

Call it before the process imports ``uvicorn`` in any other way; once the real package is
loaded (``mchub cloud serve`` runs ``uvicorn.run``) :func:`load` uses it as it is.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import Server


def load() -> tuple[type[Config], type[Server]]:
    """uvicorn's ``Config`` and ``Server`` classes, importing neither click nor multiprocessing."""
    if "uvicorn" not in sys.modules:
        spec = importlib.util.find_spec("uvicorn")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("uvicorn is not installed")
        package = types.ModuleType("uvicorn", "uvicorn, loaded without its command line (webui.embedded_uvicorn)")
        package.__spec__, package.__file__ = spec, spec.origin
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["uvicorn"] = package
    from uvicorn.config import Config
    from uvicorn.server import Server

    package = sys.modules["uvicorn"]
    vars(package).update(Config=Config, Server=Server)  # what uvicorn's own modules take from it (uvicorn.lifespan)
    return Config, Server
