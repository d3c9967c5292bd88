"""The experiment queue: enqueue (sweeps), workers with leases, backends.

`base` is the interface every backend implements; `embedded` is the default
SQLite backend and `celery/` the Celery one; `client` holds what a user's commands
do; `worker` runs entries, each attempt in a `child` process. The workspace
snapshot an entry starts from is `tether.gitstore.snapshot`.
"""
