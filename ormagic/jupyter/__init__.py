"""The Jupyter skin: ``%%chat`` and ``%chat``. The only code that touches IPython's shell.

``magic`` (flags -> options -> the engine -> the view), ``commands`` (the ``%chat``
subcommands), ``notebook`` (the shell seen as a notebook by the engine) and ``display``
(the publisher the views draw through).
"""
