"""One prompt over every row: the batch layer, plain Python under ``ormagic.map``.

It sits on the engine's settings and the client's asynchronous path:

- ``template``, ``rows``, ``schema``: what is asked of each row and how answers come back
  in the shape of the input (list, pandas Series or DataFrame);
- ``cache``: every good answer on disk (SQLite), keyed on what shapes it, so a re-run pays
  only for rows it has not seen;
- ``pricing``: the estimate before anything is sent, and the cap;
- ``limiter``, ``runner``, ``loop``: rows in flight on an asyncio loop in a thread of its
  own, slowing down on 429 and speeding up again (AIMD), cancelled by an interrupt;
- ``job``: the whole run, as ``ormagic.map`` and a Dask worker call it;
- ``deferred``: OpenRouter's batch endpoint (about half price, within 24 hours);
- ``on_dask``: the same run on each partition of a Dask collection.

Nothing here imports IPython or ipywidgets; pandas and Dask are imported only when the
data is theirs.
"""
