"""jobs.py: ten Python bugs, one per first argument (see BUGS in bench/bucket_matrix.py); the
second argument, 0 or 1, changes the address or data but not the bug."""

import ctypes
import os
import signal
import sys
import threading

INPUT = int(sys.argv[2]) if len(sys.argv) > 2 else 0


def read_header(address):
    return ctypes.string_at(address, 16)


def clear(address):
    ctypes.memset(address, 0, 8)


def shutdown():
    os.abort()


def crash():
    os.kill(os.getpid(), signal.SIGSEGV)


def load(address):
    return ctypes.string_at(address, 4)


def from_cache():
    return load(8 + INPUT * 8)


def from_disk():
    return load(16 + INPUT * 16)


def worker():
    ctypes.memset(32 + INPUT * 32, 1, 8)


def on_usr1(signum, frame):
    ctypes.string_at(24 + INPUT * 8, 2)


def process(mode):
    if mode == "fault":
        ctypes.string_at(8 + INPUT * 8, 1)
    else:
        os.abort()


def call_plugin(address):
    ctypes.CFUNCTYPE(ctypes.c_int)(address)()


def main(bug):
    if bug == "string-at":
        read_header(8 + INPUT * 8)
    elif bug == "memset":
        clear(16 + INPUT * 16)
    elif bug == "abort":
        shutdown()
    elif bug == "self-kill":
        crash()
    elif bug == "load-cache":
        from_cache()
    elif bug == "load-disk":
        from_disk()
    elif bug == "thread":
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    elif bug == "signal":
        signal.signal(signal.SIGUSR1, on_usr1)
        os.kill(os.getpid(), signal.SIGUSR1)
    elif bug == "process-fault":
        process("fault")
    elif bug == "process-abort":
        process("abort")
    elif bug == "call-null":
        call_plugin(8 + INPUT * 8)
    else:
        sys.exit(2)


main(sys.argv[1] if len(sys.argv) > 1 else "")
