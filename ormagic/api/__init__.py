"""The Python API: what ``ormagic.ask`` and ``ormagic.stream`` run. No IPython."""
