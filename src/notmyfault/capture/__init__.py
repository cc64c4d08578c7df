"""Capture: make sure a fault leaves a core dump, and find it afterwards.

- :mod:`.pattern`: what kernel.core_pattern means, and the file name it gives a crash;
- :mod:`.config`: this machine's dump settings and the verdict (``notmyfault dumpconfig``);
- :mod:`.prepare`: what a process does to itself before a fault (limits, filter, dumpable);
- :mod:`.watch`: run a crashing child, wait for it, and locate the dump it left.
"""
