"""The command line, ``python -m gradreg``: the parser and the data, list and train commands (``main``), shared
argument types (``args``) and the attack, zoo and reproduce commands (``attack``, ``zoo``, ``reproduce``).

It imports the library (core … paper) lazily inside its commands; never ``gradreg.ui`` or ``gradreg.lessons``.
"""
