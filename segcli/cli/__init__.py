"""The ``segcli`` command: a thin shell over the library.

``root.py`` holds the Typer app and its entry point and registers the
commands (one module each, ``*_cmd.py``). This module stays empty, so a
command module can import its siblings (``from segcli.cli import options``)
without an import cycle through the app.
"""
