"""The leaves every layer may use: sizes (``units``), signal and si_code names (``sigcodes``),
process capabilities (``caps``) and text that can be stored whatever bytes a dump held (``utf8``).

May import: nothing.
"""
