# Run inside gdb (gdb -batch -nx CORE -x tests/gdb_frames.py): print the
# crashing thread's frames as one JSON line, innermost first, each with the
# function name gdb gives it, its pc and the shared object holding the pc.
import json

import gdb  # type: ignore[import-not-found]

KINDS = {
    gdb.NORMAL_FRAME: "normal",
    gdb.INLINE_FRAME: "inline",
    gdb.TAILCALL_FRAME: "tailcall",
    gdb.SIGTRAMP_FRAME: "sigtramp",
}
frames = []
frame = gdb.newest_frame()
while frame is not None and len(frames) < 64:
    pc = frame.pc()
    kind = KINDS.get(frame.type(), "other")
    frames.append({"name": frame.name(), "pc": pc, "solib": gdb.solib_name(pc), "kind": kind})
    try:
        frame = frame.older()
    except gdb.error:
        break
print("FRAMES=" + json.dumps(frames))
