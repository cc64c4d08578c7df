"""The leaves every layer may use: sizes (``units``), signal and si_code names (``sigcodes``),
process capabilities (``caps``), text that can be stored whatever bytes a dump held (``utf8``) and
the one safe way to write a file (``files``), children that die with their parent (``lifetime``)
and times as people write them (``when``).

May import: nothing.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: `import notmyfault` stays cheap

if TYPE_CHECKING:
    from notmyfault.base.files import (
        SafeFile,
        WriteFailed,
        check_destination,
        check_directory,
        private_temp_dir,
        reap_stale,
        remove_temp_dirs_of,
        user_cache_dir,
        write_error,
        write_file,
    )
    from notmyfault.base.lifetime import PARENT_ENV, die_with_parent, ended
    from notmyfault.base.sigcodes import Stopped, parse_signal, signal_name
    from notmyfault.base.units import format_size, parse_size
    from notmyfault.base.utf8 import storable, storable_tree
    from notmyfault.base.when import parse_when

_EXPORTS = {
    "PARENT_ENV": "notmyfault.base.lifetime:PARENT_ENV",
    "die_with_parent": "notmyfault.base.lifetime:die_with_parent",
    "ended": "notmyfault.base.lifetime:ended",
    "SafeFile": "notmyfault.base.files:SafeFile",
    "WriteFailed": "notmyfault.base.files:WriteFailed",
    "check_destination": "notmyfault.base.files:check_destination",
    "check_directory": "notmyfault.base.files:check_directory",
    "private_temp_dir": "notmyfault.base.files:private_temp_dir",
    "reap_stale": "notmyfault.base.files:reap_stale",
    "remove_temp_dirs_of": "notmyfault.base.files:remove_temp_dirs_of",
    "user_cache_dir": "notmyfault.base.files:user_cache_dir",
    "write_error": "notmyfault.base.files:write_error",
    "write_file": "notmyfault.base.files:write_file",
    "Stopped": "notmyfault.base.sigcodes:Stopped",
    "format_size": "notmyfault.base.units:format_size",
    "parse_signal": "notmyfault.base.sigcodes:parse_signal",
    "parse_size": "notmyfault.base.units:parse_size",
    "signal_name": "notmyfault.base.sigcodes:signal_name",
    "storable": "notmyfault.base.utf8:storable",
    "storable_tree": "notmyfault.base.utf8:storable_tree",
    "parse_when": "notmyfault.base.when:parse_when",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = [
    "PARENT_ENV",
    "SafeFile",
    "Stopped",
    "WriteFailed",
    "check_destination",
    "check_directory",
    "die_with_parent",
    "ended",
    "format_size",
    "parse_signal",
    "parse_size",
    "parse_when",
    "private_temp_dir",
    "reap_stale",
    "remove_temp_dirs_of",
    "signal_name",
    "storable",
    "storable_tree",
    "user_cache_dir",
    "write_error",
    "write_file",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
