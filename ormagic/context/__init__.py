"""The notebook as context: read the shell, bound it, redact it, lay it out for the model.

``snapshot`` (the shell's history as plain data; ``capture`` records printed output where
IPython does not), ``summaries`` (variables as short text), ``redact`` (keys and tokens
out), ``interpolate`` (``{name}`` in prompts) and ``block`` (the context block). The
shell is duck-typed: IPython is never imported here.
"""
