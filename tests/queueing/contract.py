"""The contract every queue backend passes (huey-style: subclass and give a `backend`).

A subclass provides a `backend` fixture returning a fresh, empty backend whose
`on_event` hook appends to the `events` list fixture. Time is always passed in:
a two-hour lease is tested without waiting.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tether.errors import QueueError
from tether.queue.base import (
    CANCELLED,
    DONE,
    FAILED,
    MAX_LOST,
    QUEUED,
    RETRYING,
    RUNNING,
    Entry,
    Outcome,
    QueueBackend,
    QueueEvent,
    WorkerInfo,
)

T0 = 1_700_000_000.0
HOURS_2 = 7200.0
_counter = iter(range(1_000_000))


def make_entry(**fields: Any) -> Entry:
    n = next(_counter)
    base: dict[str, Any] = {
        "id": f"e{n:06d}aa", "name": f"exp-{n}", "baseline": "b" * 40, "snapshot": "c" * 40,
        "snapshot_ref": "refs/tether/queue/snap", "run_id": f"run{n:06d}",
        "overrides": ("lr=0.1",), "env": {"TETHER_SEED": "1"}, "created_at": T0 + n,
    }
    base.update(fields)
    return Entry(**base)


class QueueContract:
    """Behaviour shared by every backend."""

    @pytest.fixture
    def events(self) -> list[QueueEvent]:
        return []

    def test_enqueue_get_and_list_in_order(self, backend: QueueBackend) -> None:
        entries = [make_entry() for _ in range(3)]
        backend.enqueue(entries, T0)
        listed = backend.entries()
        assert [e.id for e in listed] == [e.id for e in entries]
        got = backend.get(entries[1].id)
        assert got is not None and got.state == QUEUED and got.attempt == 0
        assert got.overrides == ("lr=0.1",) and got.env == {"TETHER_SEED": "1"}
        by_prefix = backend.get(entries[2].id[:-1])
        assert by_prefix is not None and by_prefix.id == entries[2].id
        with pytest.raises(QueueError):
            backend.get("e")  # every id starts with e: ambiguous
        assert backend.get("nope") is None
        assert backend.entries(states=[RUNNING]) == []

    def test_entries_by_state_agree_with_all_entries(self, backend: QueueBackend) -> None:
        entries = [make_entry(queue=q) for q in ("a", "b", "a", "a", "b")]
        backend.enqueue(entries, T0)
        one = backend.claim(["a"], "w1", T0, 60)
        two = backend.claim(["b"], "w1", T0, 60)
        assert one is not None and two is not None
        backend.finish(one.id, one.attempt, "w1", Outcome(DONE), T0 + 1)
        backend.finish(two.id, two.attempt, "w1", Outcome(RETRYING, not_before=T0 + 9), T0)
        assert backend.claim(["a"], "w2", T0 + 2, 60) is not None
        everything = backend.entries()
        assert [e.id for e in everything] == [e.id for e in entries]
        for states in ([QUEUED], [RUNNING], [QUEUED, RETRYING, RUNNING], [RETRYING, DONE]):
            for queues in (None, ["a"], ["b", "c"]):
                expected = [e for e in everything if e.state in states
                            and (queues is None or e.queue in queues)]
                assert backend.entries(states=states, queues=queues) == expected

    def test_a_reproduction_keeps_its_link_to_the_original(self, backend: QueueBackend) -> None:
        link = {"id": "run0", "ref": "refs/tether/exps/" + "b" * 40 + "/base", "commit": "c" * 40,
                "name": "base", "tolerances": {"acc": {"kind": "rel", "value": 0.01}},
                "origin": "schedule:nightly"}
        repro, plain = make_entry(reproduces=link, force=True), make_entry()
        backend.enqueue([repro, plain], T0)
        got, other = backend.get(repro.id), backend.get(plain.id)
        assert got is not None and got.reproduces == link and got.force
        assert other is not None and other.reproduces is None
        claimed = backend.claim(["default"], "w1", T0, 60)
        assert claimed is not None and claimed.reproduces == link

    def test_claim_takes_priority_then_oldest_of_named_queues(self, backend: QueueBackend) -> None:
        low, high, other = make_entry(), make_entry(priority=5), make_entry(queue="gpu")
        backend.enqueue([low, high, other], T0)
        first = backend.claim(["default"], "w1", T0, 60)
        second = backend.claim(["default"], "w1", T0, 60)
        assert (first and first.id, second and second.id) == (high.id, low.id)
        assert backend.claim(["default"], "w1", T0, 60) is None
        gpu = backend.claim(["gpu", "default"], "w2", T0, 60)
        assert gpu is not None and gpu.id == other.id
        assert gpu.state == RUNNING and gpu.attempt == 1 and gpu.worker == "w2"

    def test_concurrent_claims_never_share_an_entry(self, backend: QueueBackend) -> None:
        backend.enqueue([make_entry() for _ in range(40)], T0)
        taken: list[str] = []
        lock = threading.Lock()

        def claim_all(worker: str) -> None:
            while (entry := backend.claim(["default"], worker, T0, 60)) is not None:
                with lock:
                    taken.append(entry.id)

        threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(taken) == 40 and len(set(taken)) == 40

    def test_two_hour_lease_is_renewed_then_expires(self, backend: QueueBackend) -> None:
        entry = make_entry()
        backend.enqueue([entry], T0)
        claimed = backend.claim(["default"], "w1", T0, HOURS_2)
        assert claimed is not None
        assert backend.requeue_expired(T0 + HOURS_2 - 1) == []
        beat = backend.heartbeat(entry.id, 1, "w1", T0 + HOURS_2 - 1, HOURS_2)
        assert beat.owned and not beat.kill_requested
        assert backend.requeue_expired(T0 + HOURS_2 + 1) == []  # renewed
        requeued = backend.requeue_expired(T0 + 2 * HOURS_2)
        assert [e.id for e in requeued] == [entry.id] and requeued[0].state == QUEUED
        again = backend.claim(["default"], "w2", T0 + 2 * HOURS_2, HOURS_2)
        assert again is not None and again.attempt == 2 and again.lost == 1

    def test_a_worker_that_lost_its_lease_is_fenced_off(self, backend: QueueBackend) -> None:
        entry = make_entry()
        backend.enqueue([entry], T0)
        backend.claim(["default"], "old", T0, 10)
        backend.requeue_expired(T0 + 11)
        backend.claim(["default"], "new", T0 + 12, 10)
        assert not backend.heartbeat(entry.id, 1, "old", T0 + 13, 10).owned
        assert not backend.finish(entry.id, 1, "old", Outcome(FAILED, error="late"), T0 + 13)
        assert backend.finish(entry.id, 2, "new", Outcome(DONE, status="success",
                                                          result_ref="refs/x"), T0 + 14)
        final = backend.get(entry.id)
        assert final is not None and final.state == DONE and final.result_ref == "refs/x"

    def test_an_entry_that_loses_max_lost_workers_fails(self, backend: QueueBackend) -> None:
        entry = make_entry()
        backend.enqueue([entry], T0)
        now = T0
        for _ in range(MAX_LOST):
            assert backend.claim(["default"], "w", now, 1) is not None
            now += 2
            backend.requeue_expired(now)
        final = backend.get(entry.id)
        assert final is not None and final.state == FAILED and "lost" in (final.error or "")

    def test_retrying_waits_for_its_backoff(self, backend: QueueBackend) -> None:
        entry = make_entry()
        backend.enqueue([entry], T0)
        backend.claim(["default"], "w", T0, 60)
        assert backend.finish(entry.id, 1, "w", Outcome(
            RETRYING, error="stage train failed (exit 3)", not_before=T0 + 30,
            stage_failures={"train": 1}), T0 + 1)
        assert backend.claim(["default"], "w", T0 + 29, 60) is None
        again = backend.claim(["default"], "w", T0 + 30, 60)
        assert again is not None and again.attempt == 2 and again.stage_failures == {"train": 1}

    def test_kill_cancels_waiting_and_flags_running(self, backend: QueueBackend) -> None:
        waiting, running = make_entry(), make_entry(priority=9)
        backend.enqueue([waiting, running], T0)
        backend.claim(["default"], "w", T0, 60)
        assert backend.request_kill(waiting.id, T0).state == CANCELLED
        assert backend.request_kill(running.id, T0).state == RUNNING
        assert backend.heartbeat(running.id, 1, "w", T0 + 1, 60).kill_requested
        with pytest.raises(QueueError):
            backend.request_kill(waiting.id, T0)

    def test_remove_refuses_running_entries(self, backend: QueueBackend) -> None:
        done, running = make_entry(), make_entry(priority=9)
        backend.enqueue([done, running], T0)
        backend.claim(["default"], "w", T0, 60)
        with pytest.raises(QueueError):
            backend.remove([running.id])
        assert [e.id for e in backend.remove([done.id])] == [done.id]
        assert backend.get(done.id) is None and backend.get(running.id) is not None

    def test_reserved_names_and_retry(self, backend: QueueBackend) -> None:
        entry = make_entry(name="lr-sweep-1")
        backend.enqueue([entry], T0)
        assert "lr-sweep-1" in backend.reserved_names(entry.baseline)
        assert backend.reserved_names("0" * 40) == set()
        backend.claim(["default"], "w", T0, 60)
        with pytest.raises(QueueError):
            backend.retry(entry.id, name="lr-sweep-1-r2", run_id="r2", now=T0)
        backend.finish(entry.id, 1, "w", Outcome(FAILED, status="failed"), T0 + 1)
        again = backend.retry(entry.id, name="lr-sweep-1-r2", run_id="r2", now=T0 + 2)
        assert (again.state, again.name, again.run_id, again.attempt) == (
            QUEUED, "lr-sweep-1-r2", "r2", 0)

    def test_lifecycle_events_reach_the_hook(
        self, backend: QueueBackend, events: list[QueueEvent]
    ) -> None:
        first, second = make_entry(), make_entry()
        backend.enqueue([first, second], T0)
        backend.claim(["default"], "w", T0, 5)
        backend.finish(first.id, 1, "w", Outcome(DONE, status="success"), T0 + 1)
        backend.claim(["default"], "w", T0 + 1, 5)
        backend.requeue_expired(T0 + 10)
        kinds = [(e.kind, e.entry.id) for e in events]
        assert kinds == [("queued", first.id), ("queued", second.id), ("started", first.id),
                         (DONE, first.id), ("started", second.id), ("requeued", second.id)]

    def test_attempt_logs_are_kept_per_attempt(self, backend: QueueBackend) -> None:
        entry = make_entry()
        backend.enqueue([entry], T0)
        for attempt, text in ((1, b"first\n"), (2, b"second\n")):
            folder = backend.attempt_dir(entry.id, attempt)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "output.log").write_bytes(text)
        assert backend.read_log(entry.id, 1).data == b"first\n"
        chunk = backend.read_log(entry.id, 2, offset=2)
        assert chunk.data == b"cond\n" and chunk.offset == 7 and chunk.mtime is not None
        assert backend.read_log(entry.id, 3).mtime is None


    # -- schedules --------------------------------------------------------

    def test_each_occurrence_is_claimed_once(self, backend: QueueBackend) -> None:
        assert backend.fired() == {}
        assert backend.claim_occurrence("nightly", T0, "w1", T0 + 1)
        assert not backend.claim_occurrence("nightly", T0, "w2", T0 + 2)
        assert backend.claim_occurrence("hourly", T0, "w2", T0 + 2)  # another schedule
        backend.note_fired("nightly", T0, "queued e1 calm-fox")
        fired = backend.fired()
        assert set(fired) == {"nightly", "hourly"}
        night = fired["nightly"]
        assert (night.occurrence, night.worker, night.claimed_at, night.result) == (
            T0, "w1", T0 + 1, "queued e1 calm-fox")
        assert fired["hourly"].result == ""

    def test_an_occurrence_older_than_the_last_claimed_is_refused(
        self, backend: QueueBackend
    ) -> None:
        assert backend.claim_occurrence("nightly", T0 + 86400, "w1", T0 + 86401)
        assert not backend.claim_occurrence("nightly", T0, "w2", T0 + 86402)  # a late clock
        backend.note_fired("nightly", T0, "stale")  # not the last claimed: ignored
        assert backend.fired()["nightly"].result == ""
        assert backend.claim_occurrence("nightly", T0 + 2 * 86400, "w2", T0 + 2 * 86400)
        assert backend.fired()["nightly"].worker == "w2"

    def test_a_run_by_hand_is_kept_apart_from_the_occurrences(
        self, backend: QueueBackend
    ) -> None:
        assert backend.by_hand() == {}
        assert backend.claim_occurrence("nightly", T0, "w1", T0 + 1)
        backend.note_by_hand("nightly", "laptop:7", T0 + 50, "queued e1 calm-fox")
        backend.note_by_hand("nightly", "laptop:8", T0 + 60, "queued e2 bold-owl")
        [hand] = backend.by_hand().values()
        assert (hand.schedule, hand.occurrence, hand.worker, hand.result) == (
            "nightly", T0 + 60, "laptop:8", "queued e2 bold-owl")
        assert backend.fired()["nightly"].occurrence == T0  # the claims are untouched
        assert backend.claim_occurrence("nightly", T0 + 30, "w2", T0 + 30)

    def test_concurrent_claims_of_one_occurrence_have_one_winner(
        self, backend: QueueBackend
    ) -> None:
        wins: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(6)

        def claim(worker: str) -> None:
            start.wait()
            for step in range(20):
                if backend.claim_occurrence("every-5s", T0 + 5 * step, worker, T0 + 5 * step):
                    with lock:
                        wins.append(f"{step}:{worker}")

        threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        steps = sorted(int(win.split(":")[0]) for win in wins)
        assert steps == sorted(set(steps)) and steps[-1] == 19

    # -- requirements and tags ------------------------------------------------

    def test_claim_takes_only_entries_the_tags_satisfy(self, backend: QueueBackend) -> None:
        gpu = make_entry(priority=9, requires=("gpu",))
        both = make_entry(priority=5, requires=("a100", "gpu"))
        plain = make_entry()
        backend.enqueue([gpu, both, plain], T0)
        assert backend.get(both.id) is not None
        assert backend.get(both.id).requires == ("a100", "gpu")  # type: ignore[union-attr]
        cpu = backend.claim(["default"], "cpu", T0, 60)  # no tags: only the plain entry
        assert cpu is not None and cpu.id == plain.id
        assert backend.claim(["default"], "cpu", T0, 60, ("cpu",)) is None
        first = backend.claim(["default"], "g", T0, 60, ("gpu",))
        assert first is not None and first.id == gpu.id
        assert backend.claim(["default"], "g", T0, 60, ("gpu",)) is None  # a100 missing
        last = backend.claim(["default"], "big", T0, 60, ("a100", "gpu", "x"))
        assert last is not None and last.id == both.id and last.requires == ("a100", "gpu")

    def test_start_refuses_an_entry_the_tags_do_not_satisfy(self, backend: QueueBackend) -> None:
        entry = make_entry(requires=("gpu",))
        backend.enqueue([entry], T0)
        assert backend.start(entry.id, "cpu", T0, 60) is None
        assert backend.start(entry.id, "cpu", T0, 60, ("cpu",)) is None
        got = backend.get(entry.id)
        assert got is not None and got.state == QUEUED and got.attempt == 0  # nothing consumed
        started = backend.start(entry.id, "g", T0, 60, ("gpu",))
        assert started is not None and started.attempt == 1

    def test_requirements_survive_a_requeue_and_a_retry(self, backend: QueueBackend) -> None:
        entry = make_entry(requires=("gpu",))
        backend.enqueue([entry], T0)
        backend.claim(["default"], "g", T0, 5, ("gpu",))
        backend.requeue_expired(T0 + 10)
        assert backend.claim(["default"], "cpu", T0 + 10, 5) is None
        again = backend.claim(["default"], "g", T0 + 10, 5, ("gpu",))
        assert again is not None and again.attempt == 2
        backend.finish(entry.id, 2, "g", Outcome(FAILED, status="failed"), T0 + 11)
        retried = backend.retry(entry.id, name="again", run_id="r2", now=T0 + 12)
        assert retried.requires == ("gpu",)
        assert backend.claim(["default"], "cpu", T0 + 12, 5) is None

    def test_live_workers_say_their_queues_and_tags(self, backend: QueueBackend) -> None:
        backend.announce_worker("host:1", ["default", "gpu"], T0, 10, ("gpu", "a100"))
        backend.announce_worker("host:2", ["default"], T0, 10)
        assert backend.live_workers(T0 + 5) == [
            WorkerInfo("host:1", ("default", "gpu"), ("a100", "gpu"), T0 + 10, T0),
            WorkerInfo("host:2", ("default",), (), T0 + 10, T0)]
        assert backend.stats(T0 + 5).workers == {"default": 2, "gpu": 1}
        backend.announce_worker("host:1", ["default", "gpu"], T0 + 8, 10, ("gpu", "a100"))
        assert [(w.id, w.seen) for w in backend.live_workers(T0 + 12)] == [("host:1", T0 + 8)]
        backend.retire_worker("host:1")
        assert backend.live_workers(T0 + 12) == []

    def test_stats_count_what_waits_runs_and_retried(self, backend: QueueBackend) -> None:
        first, second, gpu = make_entry(), make_entry(), make_entry(queue="gpu")
        backend.enqueue([first, second, gpu], T0)
        stats = backend.stats(T0 + 10)
        assert (stats.waiting, stats.running) == ({"default": 2, "gpu": 1}, {})
        assert stats.waiting_since == {"default": first.created_at, "gpu": gpu.created_at}
        assert (stats.retries, stats.lost_workers) == (0, 0)
        assert stats.queues == ["default", "gpu"]
        claimed = backend.claim(["default"], "w1", T0 + 10, 60)
        assert claimed is not None and claimed.id == first.id
        assert backend.stats(T0 + 11).running == {"default": 1}
        backend.finish(first.id, 1, "w1", Outcome(RETRYING, error="x", not_before=T0 + 500),
                       T0 + 20)
        stats = backend.stats(T0 + 30)
        assert stats.retries == 1 and stats.waiting == {"default": 2, "gpu": 1}
        # The retried entry waits from the end of its delay: the other one waited longer.
        assert stats.waiting_since["default"] == second.created_at
        taken = backend.claim(["default"], "w2", T0 + 30, 60)
        assert taken is not None and taken.id == second.id
        backend.requeue_expired(T0 + 200)  # w2 is lost
        stats = backend.stats(T0 + 200)
        assert (stats.lost_workers, stats.running, stats.waiting) == (
            1, {}, {"default": 2, "gpu": 1})
        assert stats.waiting_since["default"] == T0 + 200  # requeued just now

    def test_stats_count_workers_with_a_fresh_announcement(self, backend: QueueBackend) -> None:
        backend.announce_worker("w1", ["default", "gpu"], T0, 60)
        backend.announce_worker("w2", ["default"], T0, 10)
        assert backend.stats(T0 + 5).workers == {"default": 2, "gpu": 1}
        assert backend.stats(T0 + 30).workers == {"default": 1, "gpu": 1}  # w2 went quiet
        backend.announce_worker("w2", ["default"], T0 + 30, 10)  # its heartbeat came back
        assert backend.stats(T0 + 31).workers == {"default": 2, "gpu": 1}
        assert backend.stats(T0 + 31).queues == ["default", "gpu"]
        backend.retire_worker("w1")
        assert backend.stats(T0 + 31).workers == {"default": 1}
