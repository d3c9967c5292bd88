"""The viewer in a real browser (Debian's Chromium through Playwright) against `tether view`
serving a repository whose experiments were recorded by real `tether run`s."""

from __future__ import annotations

import json
import time
from typing import Any

from web.browser import XSS_IMG, XSS_SCRIPT, XSS_TAG, Project, Visit

TIMEOUT = 20_000
COLUMN_JS = """(key) => {
  const heads = [...document.querySelectorAll('.thead .th')];
  const index = heads.findIndex((head) => head.dataset.key === key);
  const rows = [...document.querySelectorAll('.tbody .tr[data-name]')];
  rows.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
  return rows.map((row) => row.children[index].textContent);
}"""


def column(page: Any, key: str) -> list[str]:
    """The cells of one column, top to bottom, as the page shows them."""
    return list(page.evaluate(COLUMN_JS, key))


def until(page: Any, condition: str, arg: Any = None, timeout: float = TIMEOUT) -> None:
    """Wait until the JavaScript `condition` (over `arg`) holds; a function, not an eval'd
    string, which the page's Content-Security-Policy would refuse."""
    page.wait_for_function(f"(arg) => ({condition})", arg=arg, timeout=timeout)


def renders(page: Any) -> int:
    return int(page.evaluate("Number(document.body.dataset.tableRenders || 0)"))


def wait_rerender(page: Any, before: int) -> None:
    until(page, "Number(document.body.dataset.tableRenders || 0) > arg", before)


def open_table(visit: Visit, query: str = "") -> Any:
    page = visit.go(f"#/{query}")
    page.wait_for_selector(".tbody .tr[data-name]", timeout=TIMEOUT)
    return page


def test_table_renders_the_experiments_with_best_values(visit: Visit) -> None:
    page = open_table(visit)
    assert {"a", "b", "c", "xss"} <= set(column(page, "name"))
    # b has the best acc (max) and the best loss (min)
    assert page.locator('.tbody .tr[data-name="b"] .td.best').count() == 2
    assert page.locator(".chip", has_text="main").count() == 1
    visit.shot("table")


def test_sort_by_clicking_a_column_both_ways_and_kept_in_the_url(visit: Visit) -> None:
    page = open_table(visit)
    before = renders(page)
    page.click('.th[data-key="metric:acc"]')
    wait_rerender(page, before)
    values = [float(v) for v in column(page, "metric:acc") if v]
    assert values == sorted(values) and len(values) >= 4
    before = renders(page)
    page.click('.th[data-key="metric:acc"]')
    wait_rerender(page, before)
    values = [float(v) for v in column(page, "metric:acc") if v]
    assert values == sorted(values, reverse=True)
    assert "sort=metric%3Aacc" in page.url and "order=desc" in page.url


def test_filter_with_the_servers_language_and_its_caret_error(visit: Visit) -> None:
    page = open_table(visit)
    before = renders(page)
    page.fill("input.filter", "metrics.acc > 0.8 and status == 'success'")
    page.press("input.filter", "Enter")
    wait_rerender(page, before)
    assert sorted(column(page, "name")) == ["a", "b"]  # acc 0.9 and 0.99
    page.fill("input.filter", "metrics.acc >> 1")
    page.press("input.filter", "Enter")
    caret = page.wait_for_selector(".filter-error pre.caret", timeout=TIMEOUT)
    text, marker = caret.text_content().split("\n")
    assert text == "metrics.acc >> 1"
    assert marker == " " * text.index(">>") + " ^"  # under the second '>'
    assert "expected" in page.locator(".filter-error").inner_text()
    visit.shot("filter-error")
    # the shared URL restores the filter
    page = visit.go("#/?filter=metrics.acc%20%3C%200.6")
    until(page, "document.querySelectorAll('.tbody .tr[data-name]').length === 1")
    assert column(page, "name") == ["c"]


def test_column_picker_searches_hides_and_shows_columns(visit: Visit) -> None:
    page = open_table(visit)
    assert page.locator('.th[data-key="param:train.note"]').count() == 1  # it differs
    page.click("text=Columns")
    page.fill(".picker-search", "note")
    assert page.locator(".picker-row").all_text_contents() == ["param:train.note"]
    page.uncheck('.picker-row input[data-key="param:train.note"]')
    page.wait_for_selector('.th[data-key="param:train.note"]', state="detached")
    assert "cols=" in page.url and "train.note" not in page.url.split("cols=")[1]
    page.check('.picker-row input[data-key="param:train.note"]')
    page.wait_for_selector('.th[data-key="param:train.note"]')


def test_compare_overlays_the_curves_of_the_selected_rows(visit: Visit) -> None:
    page = open_table(visit)
    for name in ("a", "b", "c"):
        page.check(f'.tbody .tr[data-name="{name}"] input[type=checkbox]')
    page.click("text=Compare (3)")
    chart = page.wait_for_selector('.chart[data-metric="loss"][data-series="3"]', timeout=TIMEOUT)
    assert chart.query_selector_all(".u-legend .u-series").__len__() == 4  # x + 3 runs
    assert chart.query_selector("canvas") is not None
    assert page.locator("td.better").count() + page.locator("td.worse").count() > 0
    page.check("#log-y")
    page.wait_for_selector('.chart[data-metric="loss"][data-series="3"] canvas')
    visit.shot("compare")


def test_a_running_experiments_log_grows_live(visit: Visit, browser_project: Project) -> None:
    release = browser_project.root.parent / "release-live"
    run = browser_project.start("run", "-n", "live", "-S", "train.lr=0.2",
                                "-S", f"train.hold={release}")
    try:
        page = visit.go("#/exp/live")
        until(page, "document.querySelector('#logs')?.textContent.includes('tick 2')",
              timeout=60_000)
        first = page.locator("#logs").text_content()
        # more ticks arrive over server-sent events, without a reload
        until(page, "document.querySelector('#logs').textContent.length > arg", len(first) + 20)
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        visit.shot("experiment-live")
        # the table lists it above the rows as running now, with where it runs
        page = visit.go("#/")
        page.wait_for_selector('.running-run[data-where="in-place"] a:text-is("live")',
                               timeout=TIMEOUT)
        assert "live (in-place)" in page.locator(".running-bar").text_content()
        page = visit.go("#/exp/live")
    finally:
        release.write_text("go")
        out, _ = run.communicate(timeout=120)
    assert run.returncode == 0, out
    until(page, "document.querySelector('#exp-status')?.textContent === 'success'")


def test_a_queue_entry_can_be_killed(visit: Visit, browser_project: Project) -> None:
    browser_project.tether_ok("run", "--queue", "-n", "queued", "-S", "train.lr=0.7")
    page = visit.go("#/queue")
    row = page.wait_for_selector('tr:has(a:text-is("queued"))', timeout=TIMEOUT)
    visit.shot("queue")
    row.query_selector('button[data-action="kill"]').click()
    until(
        page, """(() => { const row = [...document.querySelectorAll('tr')].find((tr) =>
             tr.querySelector('a')?.textContent === 'queued');
           return !row || !/^(queued|running)$/.test(row.querySelector('.status').textContent);
        })()""")
    listing = browser_project.tether_ok("queue", "status", "--json")
    entries = [json.loads(line) for line in listing.splitlines()]
    states = [entry.get("state") for entry in entries if entry.get("name") == "queued"]
    assert states in ([], ["cancelled"]), entries


def test_idle_workers_and_why_an_entry_waits(visit: Visit, browser_project: Project) -> None:
    """An idle worker (announced as `tether worker --tags gpu` does, with a hostile tag)
    shows with its tags and presence; an entry needing a tag no worker has says why it
    waits, as text."""
    from tether.queue.client import open_queue

    backend = open_queue(browser_project.root)
    worker, tags = "gpu-box:4242", sorted(["gpu", XSS_IMG])  # the store keeps them sorted
    backend.announce_worker(worker, ["default"], time.time(), 600, tags)
    browser_project.tether_ok("run", "--queue", "--require", "tpu", "-n", "needs-tpu",
                              "-S", "train.lr=0.9")
    try:
        page = visit.go("#/queue")
        row = page.wait_for_selector('tr:has(a:text-is("needs-tpu"))', timeout=TIMEOUT)
        assert row.query_selector("td.needs").text_content() == "tpu"
        assert row.query_selector(".blocked-mark").text_content().strip() == "blocked"
        entry = row.get_attribute("data-entry")
        reason = page.locator(f'tr[data-blocked-for="{entry}"] .blocked-reason').text_content()
        assert reason.startswith("no live worker can take it: needs tags tpu")
        assert "no worker has tpu" in reason and f"{worker} has {','.join(tags)}" in reason
        idle = page.wait_for_selector(f'tr[data-worker="{worker}"]', timeout=TIMEOUT)
        assert idle.query_selector(".status").text_content() == "idle"
        shown = [tag.text_content() for tag in idle.query_selector_all(".worker-tags .tag")]
        assert shown == tags
        assert idle.query_selector("td.queues").text_content() == "default"
        heartbeat = idle.query_selector("td.presence").text_content()  # an idle one's too
        assert heartbeat and not heartbeat.startswith("presence until "), heartbeat
        assert page.locator("img[src=x]").count() == 0
        visit.shot("queue-blocked")
    finally:
        backend.retire_worker(worker)
        backend.close()
        entries = [json.loads(line) for line in
                   browser_project.tether_ok("queue", "status", "--json").splitlines()]
        for entry in entries:
            if entry.get("name") == "needs-tpu":
                browser_project.tether_ok("queue", "kill", entry["id"])
                browser_project.tether_ok("queue", "remove", entry["id"])


def test_script_payloads_stay_text(visit: Visit) -> None:
    page = open_table(visit, "?cols=param%3Atrain.note,metric%3Aacc")
    page.wait_for_selector('.tbody .tr[data-name="xss"]')
    assert XSS_IMG in column(page, "param:train.note")
    assert any(XSS_TAG in chip for chip in page.locator(".chip").all_text_contents())
    page = visit.go("#/exp/xss")
    until(page, "document.body.textContent.includes(arg)", XSS_IMG)
    assert XSS_SCRIPT in page.locator("h1 + .message").text_content()
    until(page, "document.querySelector('#logs')?.textContent.includes('note:')")
    assert XSS_IMG in page.locator("#logs").text_content()
    assert page.locator("img").count() == 0 and page.locator("main svg").count() == 0
    page = visit.go("#/compare?names=a,xss")
    page.wait_for_selector(".chart", timeout=TIMEOUT)
    assert XSS_IMG in page.locator("main").text_content()
    assert page.locator("img").count() == 0
    page.wait_for_timeout(300)  # a fired onerror/onload would have opened a dialog by now


def test_no_request_leaves_loopback(visit: Visit) -> None:
    open_table(visit)
    for route in ("#/exp/a", "#/compare?names=a,b", "#/queue"):
        visit.go(route).wait_for_load_state("networkidle")
    assert visit.requests and visit.offsite() == []


def test_works_with_ten_thousand_experiments(big_visit: Visit) -> None:
    page = big_visit.go("#/")
    page.wait_for_selector(".tbody .tr[data-name]", timeout=60_000)
    assert page.locator(".total").inner_text() == "10,000 experiments"
    assert page.locator(".chip").count() == 10  # the generator's 10 baselines
    assert page.locator(".tbody .tr").count() < 200  # virtualized: only what is on screen
    header = page.locator(".tbody .tr.group").first.inner_text()
    assert "1,000" in header  # each baseline heads its own 1,000 experiments
    page.evaluate("document.querySelector('.table-scroll').scrollTop = 1e9")
    until(page, "document.querySelectorAll('.tbody .tr.loading').length === 0"
                " && document.querySelectorAll('.tbody .tr[data-name]').length > 10")
    before = renders(page)
    page.click('.th[data-key="name"]')
    wait_rerender(page, before)
    page.evaluate("document.querySelector('.table-scroll').scrollTop = 0")
    until(page, "document.querySelectorAll('.tbody .tr[data-name]').length > 10")
    names = column(page, "name")
    assert names == sorted(names) and all(name.startswith("exp-") for name in names)
    big_visit.shot("table-10000")
