"""What the user sees: typed events in, safe HTML and widgets out. Knows nothing of HTTP.

``markdown`` (model Markdown to safe HTML; ``blocks`` and ``texmath`` beside it), ``live``
(paced redraws, finished blocks sent once), ``reasoning`` (the widget panel) and ``views``
(the notebook and terminal views and the final bundles). Jupyter is reached only through
a ``Publisher`` handed in; ipywidgets is imported only when a panel is first shown.
"""
