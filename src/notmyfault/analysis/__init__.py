"""Analysis: pure functions from a dump reader to typed, frozen results.

Never imports the injector (faults); the two meet only in tests, the demo and the front ends.
"""
