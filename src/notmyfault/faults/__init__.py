"""The injector: the crash catalog and the code that commits faults through myfault."""
