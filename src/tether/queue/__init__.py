"""The experiment queue: snapshot, enqueue (sweeps), workers with leases, backends.

`base` is the interface every backend implements; `embedded` is the default
SQLite backend; `client` holds what a user's commands do; `worker` runs entries.
"""
