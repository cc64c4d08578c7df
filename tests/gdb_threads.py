# Run inside gdb (gdb -batch -nx EXE CORE -x tests/gdb_threads.py): print every
# thread's frames as one JSON line: [{"tid": N, "frames": [names...]}, ...].
import json

import gdb  # type: ignore[import-not-found]

threads = []
for thread in gdb.selected_inferior().threads():
    thread.switch()
    names = []
    frame = gdb.newest_frame()
    while frame is not None and len(names) < 32:
        names.append(frame.name())
        try:
            frame = frame.older()
        except gdb.error:
            break
    threads.append({"tid": thread.ptid[1], "frames": names})
print("THREADS=" + json.dumps(threads))
