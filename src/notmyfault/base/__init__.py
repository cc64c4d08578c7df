"""The leaves every layer may use: sizes (``units``), signal and si_code names (``sigcodes``),
process capabilities (``caps``) and text that can be stored whatever bytes a dump held (``utf8``).

May import: nothing.
"""

from typing import TYPE_CHECKING

from notmyfault.base.lazy import lazy_exports

if TYPE_CHECKING:
    from notmyfault.base.sigcodes import Stopped, parse_signal, signal_name
    from notmyfault.base.units import format_size, parse_size
    from notmyfault.base.utf8 import storable

_EXPORTS = {
    "Stopped": "notmyfault.base.sigcodes:Stopped",
    "format_size": "notmyfault.base.units:format_size",
    "parse_signal": "notmyfault.base.sigcodes:parse_signal",
    "parse_size": "notmyfault.base.units:parse_size",
    "signal_name": "notmyfault.base.sigcodes:signal_name",
    "storable": "notmyfault.base.utf8:storable",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = ["Stopped", "format_size", "parse_signal", "parse_size", "signal_name", "storable"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
