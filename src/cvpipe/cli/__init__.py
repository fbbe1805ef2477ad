"""The ``cvpipe`` command line: one thin module per verb over the Python API."""
