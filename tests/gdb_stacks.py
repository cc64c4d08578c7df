# Run inside gdb (gdb -batch -nx EXE CORE -x tests/gdb_stacks.py): print every thread's whole stack
# as one JSON line: [{"tid": N, "frames": [{"pc", "name", "kind"}, ...], "stop": why}, ...],
# innermost frame first, walked until gdb itself stops (at most LIMIT frames).
import json

import gdb  # type: ignore[import-not-found]

LIMIT = 50000
KINDS = {
    gdb.NORMAL_FRAME: "normal",
    gdb.INLINE_FRAME: "inline",
    gdb.TAILCALL_FRAME: "tailcall",
    gdb.SIGTRAMP_FRAME: "sigtramp",
}
gdb.execute("set backtrace past-main on")  # as far as the unwind information goes, as eu-stack walks
gdb.execute("set backtrace past-entry on")
threads = []
for thread in gdb.selected_inferior().threads():
    thread.switch()
    frames = []
    stop = None
    frame = gdb.newest_frame()
    while frame is not None and len(frames) < LIMIT:
        frames.append({"pc": frame.pc(), "name": frame.name(), "kind": KINDS.get(frame.type(), "other")})
        try:
            older = frame.older()
        except gdb.error as e:
            stop = str(e)
            break
        if older is None:
            stop = gdb.frame_stop_reason_string(frame.unwind_stop_reason())
        frame = older
    threads.append({"tid": thread.ptid[1], "frames": frames, "stop": stop})
print("STACKS=" + json.dumps(threads))
