"""Schedules: which occurrence is due at a given time (an injected clock, never a sleep),
and the `schedules:` section checked with file:line errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import write
from tether.errors import EXIT_USAGE, UsageError
from tether.feedback.schedules import Schedule, due, load_schedules


def at(text: str) -> float:
    """An RFC 3339 UTC time as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


NIGHTLY = Schedule("nightly", cron="0 3 * * *")


def test_an_occurrence_is_due_when_its_time_comes_and_only_once() -> None:
    assert due(NIGHTLY, at("2026-11-29T03:00:00"), at("2026-11-30T02:59:59")) is None
    assert due(NIGHTLY, at("2026-11-29T03:00:00"), at("2026-11-30T03:00:00")) == at(
        "2026-11-30T03:00:00")
    assert due(NIGHTLY, at("2026-11-29T03:00:00"), at("2026-11-30T03:00:40")) == at(
        "2026-11-30T03:00:00")
    # Once claimed, the same occurrence is never due again.
    assert due(NIGHTLY, at("2026-11-30T03:00:00"), at("2026-11-30T03:00:41")) is None


def test_missed_occurrences_fire_once_as_the_newest_with_catchup_once() -> None:
    # No worker ran from the 27th to the 30th at 09:00: three occurrences were missed.
    last, now = at("2026-11-27T03:00:00"), at("2026-11-30T09:00:00")
    assert due(NIGHTLY, last, now) == at("2026-11-30T03:00:00")
    assert due(NIGHTLY, at("2026-11-30T03:00:00"), now) is None


def test_missed_occurrences_are_dropped_with_catchup_skip() -> None:
    skip = Schedule("nightly", cron="0 3 * * *", catchup="skip")
    assert due(skip, at("2026-11-27T03:00:00"), at("2026-11-30T09:00:00")) is None
    # ...but one seen on time still fires.
    assert due(skip, at("2026-11-27T03:00:00"), at("2026-11-30T03:00:30")) == at(
        "2026-11-30T03:00:00")


def test_a_schedule_that_never_fired_starts_with_its_next_occurrence() -> None:
    assert due(NIGHTLY, None, at("2026-11-30T14:00:00")) is None
    assert due(NIGHTLY, None, at("2026-12-01T03:00:05")) == at("2026-12-01T03:00:00")


def test_weekdays_and_intervals() -> None:
    weekdays = Schedule("full", cron="30 2 * * 1-5")
    # Saturday 2026-12-05: the newest occurrence is Friday's, long missed: caught up once.
    assert due(weekdays, at("2026-12-03T02:30:00"), at("2026-12-05T12:00:00")) == at(
        "2026-12-04T02:30:00")
    assert weekdays.next_after(at("2026-12-05T12:00:00")) == at("2026-12-07T02:30:00")
    every = Schedule("smoke", every=5.0)
    assert due(every, None, 1_000_002.0) == 1_000_000.0
    assert due(every, 1_000_000.0, 1_000_004.9) is None
    assert due(every, 1_000_000.0, 1_000_005.0) == 1_000_005.0
    assert every.next_after(1_000_005.0) == 1_000_010.0


def test_utc_schedules_ignore_daylight_saving_and_zoned_ones_follow_it() -> None:
    # Europe/Berlin leaves summer time on 2026-10-25: 03:00 local is 02:00 UTC, then 02:00.
    utc = Schedule("n", cron="0 3 * * *")
    assert [utc.next_after(at(f"2026-10-{d}T12:00:00")) for d in (24, 25)] == [
        at("2026-10-25T03:00:00"), at("2026-10-26T03:00:00")]
    berlin = Schedule("n", cron="0 3 * * *", timezone="Europe/Berlin")
    assert [berlin.next_after(at(f"2026-10-{d}T12:00:00")) for d in (24, 25)] == [
        at("2026-10-25T02:00:00"), at("2026-10-26T02:00:00")]
    # 02:30 does not exist in Berlin on 2026-03-29 (clocks jump 02:00 -> 03:00): it fires
    # once that day all the same.
    skipped = Schedule("n", cron="30 2 * * *", timezone="Europe/Berlin")
    first = skipped.next_after(at("2026-03-28T12:00:00"))
    assert at("2026-03-29T00:00:00") <= first < at("2026-03-29T02:00:00")
    assert due(skipped, at("2026-03-28T01:30:00"), first) == first


GOOD = """\
schedules:
  nightly-repro: {cron: "0 3 * * *", repro: last-main-build}
  nightly-full:
    cron: "30 2 * * 1-5"
    timezone: Europe/Berlin
    run: {args: ["-S", "data.subset=full", "train", "--priority=5", "-m", "full data"]}
    queue: gpu
    catchup: skip
  smoke: {every: 10m, run: {args: []}}
"""


def test_the_schedules_section_is_read(tmp_path: Path) -> None:
    write(tmp_path / ".tether" / "config.yaml", GOOD)
    repro, full, smoke = load_schedules(tmp_path)
    assert (repro.name, repro.action, repro.repro, repro.catchup) == (
        "nightly-repro", "repro", "last-main-build", "once")
    assert full.run is not None and full.run.overrides == ("data.subset=full",)
    assert (full.run.targets, full.run.priority, full.run.message) == (("train",), 5,
                                                                       "full data")
    assert (full.queue, full.timezone, full.catchup) == ("gpu", "Europe/Berlin", "skip")
    assert (smoke.every, smoke.spec) == (600.0, "every 10m")
    assert repro.spec == "cron 0 3 * * * (UTC)"


BAD = """\
remotes: {}
schedules:
  nightly: {cron: "61 3 * * *", run: {args: []}}
  weekly: {cron: "0 3 * * 1", rerun: {args: []}}
  both: {every: 5s, cron: "* * * * *", repro: x}
  oops: {every: soon, repro: x, catchup: twice, timezone: Mars/Olympus}
  flags: {every: 1h, run: {args: ["--temp", "-S"]}}
"""


def test_bad_schedules_are_refused_with_the_file_line_and_name(tmp_path: Path) -> None:
    write(tmp_path / ".tether" / "config.yaml", BAD)
    with pytest.raises(UsageError) as caught:
        load_schedules(tmp_path)
    text = str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE
    assert ".tether/config.yaml:3: schedules.nightly.cron: '61 3 * * *' is not a valid cron" \
        in text
    assert ".tether/config.yaml:4: schedules.weekly: unknown key 'rerun' (did you mean 'run'?)" \
        in text
    assert "schedules.weekly: give exactly one action, run: or repro:" in text
    assert "schedules.both: give exactly one of cron: or every: (found cron and every)" in text
    assert "schedules.oops.every: 'soon' is not an interval" in text
    assert "schedules.oops.catchup: 'twice': expected once or skip" in text
    assert "schedules.oops.timezone: 'Mars/Olympus' is not a known time zone" in text
    assert "schedules.flags.run.args: '--temp' is not an option" in text
    assert "schedules.flags.run.args: -S needs a value" in text


def test_no_config_or_no_schedules_is_fine(tmp_path: Path) -> None:
    assert load_schedules(tmp_path) == []
    write(tmp_path / ".tether" / "config.yaml", "schedules:\n")
    assert load_schedules(tmp_path) == []
    write(tmp_path / ".tether" / "config.yaml", "schedules: [a, b]\n")
    with pytest.raises(UsageError, match=r"config\.yaml:1: schedules: expected a mapping"):
        load_schedules(tmp_path)
