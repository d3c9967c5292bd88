"""`/api/session` and `/api/experiments`: who is served, and the experiments table."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tether import __version__
from tether.errors import UsageError
from tether.web.catalog import DEFAULT_LIMIT, MAX_LIMIT, row_json, sort_column
from tether.web.responses import JSON
from tether.web.security import CSRF_COOKIE
from tether.web.sqlpage import can_sort
from tether.web.state import viewer_of


def session(request: Request) -> JSON:
    viewer = viewer_of(request)
    response = JSON({"repo": viewer.root.name, "read_only": viewer.policy.read_only,
                     "csrf": viewer.policy.csrf, "version": __version__})
    response.set_cookie(CSRF_COOKIE, viewer.policy.csrf, samesite="strict", path="/")
    return response


def _int_arg(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{name} must be between {low} and {high}, not {value}")
    return value


def experiments(request: Request) -> JSON:
    """A page of the experiments a filter accepts, sorted, with the whole selection's columns."""
    viewer = viewer_of(request)
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise UsageError(f"order must be asc or desc, not {order!r}")
    column = sort_column(query.get("sort") or "created")
    offset = _int_arg(request, "offset", 0, low=0, high=1 << 40)
    limit = _int_arg(request, "limit", DEFAULT_LIMIT, low=0, high=MAX_LIMIT)
    catalog = viewer.catalog
    expression = query.get("filter", "")
    every = query.get("all", "1")
    if every not in ("0", "1"):
        raise UsageError(f"all must be 0 or 1, not {every!r}",
                         hint="all=1 (the default): every baseline; all=0: HEAD's commit only")
    baseline = None if every == "1" else catalog.git.head_commit()
    if not expression.strip() and can_sort(column) and baseline is None:
        total, page, summary = catalog.table(column, order == "desc", offset, limit)
    else:
        snapshot = catalog.snapshot()
        selection = snapshot.select(expression, column, order == "desc", baseline)
        total, summary = len(selection.experiments), selection.summary(snapshot)
        page = selection.experiments[offset:offset + limit]
    labels = catalog.labels()
    body: dict[str, Any] = {
        "total": total, "offset": offset, "rows": [row_json(exp, labels) for exp in page],
        **summary, "running": viewer.running_json(),
    }
    response = JSON(body)
    catalog.answered.set()  # the first page is out: filters may warm up now
    return response
