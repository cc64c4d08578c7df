"""The window (Textual): ``notmyfault ui``.

The names below are this package's public face (see docs/api.md); its modules are internal.

May import: api (face), render, faults (face), capture (face), base.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: a face stays cheap

if TYPE_CHECKING:
    from notmyfault.ui.app import run_window

_EXPORTS = {
    "run_window": "notmyfault.ui.app:run_window",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = ["run_window"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
