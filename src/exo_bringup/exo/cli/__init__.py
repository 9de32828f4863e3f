"""The ``exo`` command-line tool (pip install); every subcommand lives in its own module."""
