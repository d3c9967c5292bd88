"""`tether view`: a local web viewer of the experiments, their logs, plots and the queue.

A Starlette app (`app.py`) over the library: the index read in SQL for the unfiltered
table (`sqlpage.py`) and held in memory for filters (`catalog.py`),
records and logs (`detail.py`), live runs over server-sent events (`live.py`), step
metrics downsampled for plotting (`downsample.py`), compare with the gate's verdict
(`comparing.py`), the queue (`queueing.py`); one security middleware (`security.py`)
and the built front-end (`static.py`). Needs the `tether[view]` extra.
"""
