"""The command line: ``python -m jaxppo.run`` and its host loop, outputs and loggers, and the
``evaluate``, ``plot``, ``merge``, ``render`` and ``export`` commands, with the one parser and error
path they share (``jaxppo.cli.parsing``). It sits on the library; the library never imports it.
``python -m jaxppo.<command>`` runs ``jaxppo.cli.<command>``.
"""
