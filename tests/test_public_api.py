"""`tether.params`, `tether.log` and `tether.summary` stay functions, whatever is imported."""

from __future__ import annotations

import importlib
import pkgutil

import tether


def test_no_submodule_shadows_the_training_api() -> None:
    for info in pkgutil.walk_packages(tether.__path__, "tether."):
        if info.name == "tether.__main__" or info.name.startswith("tether.queue.celery"):
            continue  # an optional extra
        importlib.import_module(info.name)
    assert callable(tether.params) and callable(tether.log) and callable(tether.summary)
    assert tether.params.__module__ == "tether.api"
