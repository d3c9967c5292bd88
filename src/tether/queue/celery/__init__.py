"""The Celery backend: the app and worker, the enqueue client, the Redis state, its
Lua scripts and key layout, and the `queue:` settings (read by every enqueue, so
importing this package imports neither Celery nor redis-py).
"""
