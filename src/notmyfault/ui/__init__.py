"""The window (Textual): ``notmyfault ui``."""
