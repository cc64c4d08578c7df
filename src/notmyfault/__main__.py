"""``python -m notmyfault``: the same as the ``notmyfault`` command."""

from notmyfault.cli.entry import main

if __name__ == "__main__":
    main()
