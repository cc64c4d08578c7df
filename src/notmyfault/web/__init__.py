"""The web face of the crash pipeline (``notmyfault serve``): the collector's upload endpoint and
the live UI over the triage database, on Starlette and uvicorn with Jinja2 templates.

- :mod:`.app`: the routes, the pages (templates/, static/) and their JSON twins.

Needs the ``serve`` extra (``pip install 'notmyfault[serve]'``).

The names below are this package's public face (see docs/api.md); its modules are internal.

May import: pipeline (face), triage (face), render, base.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: a face stays cheap

if TYPE_CHECKING:
    from notmyfault.web.app import Settings, create_app, serve_forever

_EXPORTS = {
    "Settings": "notmyfault.web.app:Settings",
    "create_app": "notmyfault.web.app:create_app",
    "serve_forever": "notmyfault.web.app:serve_forever",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = [
    "Settings",
    "create_app",
    "serve_forever",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
