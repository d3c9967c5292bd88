"""Progress: library code reports through a callback; only the CLI's renderer draws."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from tether.cache.objects import ObjectStore
from tether.cache.remote import Remote, pull_objects, push_objects
from tether.cli.progress import ProgressBar


class Recorder:
    """A progress callback that keeps every (done, total) it hears, from any thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            self.calls.append((done, total))


def _store_with_files(root: Path, sizes: list[int]) -> tuple[ObjectStore, set[str]]:
    store = ObjectStore(root, link_order=("copy",))
    keys = set()
    for i, size in enumerate(sizes):
        path = root / f"f{i}.bin"
        path.write_bytes(bytes([i]) * size)
        keys.add(store.save(path, link=False))
    return store, keys


def test_transfers_report_bytes_to_the_callback_and_draw_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    sizes = [1000, 2000, 3000]
    (tmp_path / "a").mkdir()
    store, keys = _store_with_files(tmp_path / "a", sizes)
    remote = Remote(str(tmp_path / "remote"), {}, "store")
    pushed = Recorder()
    result = push_objects(store, remote, keys, jobs=3, progress=pushed)
    assert len(result.sent) == 3
    assert pushed.calls[-1] == (sum(sizes), sum(sizes))
    assert [done for done, _ in pushed.calls] == sorted(done for done, _ in pushed.calls)

    (tmp_path / "b").mkdir()
    other = ObjectStore(tmp_path / "b", link_order=("copy",))
    pulled = Recorder()
    assert len(pull_objects(other, remote, keys, progress=pulled).sent) == 3
    assert max(done for done, _ in pulled.calls) == sum(sizes)
    assert all(total == 0 for _, total in pulled.calls)  # a pull does not know sizes ahead
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # the library never draws


def test_the_renderer_draws_on_a_terminal_only_and_above_its_threshold() -> None:
    stream = io.StringIO()
    with ProgressBar("push", unit="bytes", stream=stream, enabled=True) as bar:
        bar(512, 2048)
        bar(2048, 2048)
    text = stream.getvalue()
    assert "push" in text and "2.0 KiB/2.0 KiB" in text and text.endswith("\n")

    quiet = io.StringIO()
    with ProgressBar("indexing experiments", stream=quiet, enabled=True, threshold=200,
                     erase=True) as bar:
        bar(50, 100)  # a short job: no bar
    assert quiet.getvalue() == ""

    erased = io.StringIO()
    with ProgressBar("indexing experiments", stream=erased, enabled=True, threshold=200,
                     erase=True) as bar:
        bar(300, 300)
    assert "300/300" in erased.getvalue() and erased.getvalue().endswith("\r\x1b[K")

    off = io.StringIO()  # not a terminal
    with ProgressBar("pull", stream=off) as bar:
        bar(1, 2)
    assert off.getvalue() == ""
