"""Post a report on the pull or merge request, and update that same comment on later runs.

The comment is found by a hidden marker (`<!-- tether-report:KEY -->`), so each report key
keeps one comment however often CI runs. GitHub and GitLab are reached through their REST
APIs with the stdlib (`urllib.request`), from the variables their CI sets:

- GitHub: `GITHUB_API_URL`, `GITHUB_REPOSITORY`, the pull request number from the event
  in `GITHUB_EVENT_PATH`, and `GITHUB_TOKEN`.
- GitLab: `CI_API_V4_URL`, `CI_PROJECT_ID`, `CI_MERGE_REQUEST_IID`, and `GITLAB_TOKEN`
  (sent as `PRIVATE-TOKEN`).

Nothing here raises for a missing or read-only token, or a forge that cannot be reached:
the result says what happened, so CI writes the report elsewhere and goes on. The token
is masked (`record.redact`) in every message this module returns.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tether.feedback.report import GITHUB_LIMIT, GITLAB_LIMIT
from tether.record.redact import Secrets
from tether.structs import field, struct

MARKER = "<!-- tether-report:{key} -->"
TIMEOUT_SECONDS = 30.0
MAX_PAGES = 50  # 100 comments a page: a pull request with more than 5,000 gets a new one


@struct
class Target:
    """Where a comment goes: a forge's API, the project, the pull/merge request number."""

    forge: str  # github | gitlab
    api_url: str
    project: str  # owner/name on GitHub, the project id on GitLab
    number: int
    token: str | None = field(repr=False, default=None)  # never shown, not even in a repr
    token_name: str = "GITHUB_TOKEN"

    @property
    def limit(self) -> int:
        return GITHUB_LIMIT if self.forge == "github" else GITLAB_LIMIT


@struct
class CommentResult:
    """What posting did: created / updated a comment, or skipped it (with why)."""

    action: str  # created | updated | skipped
    message: str
    url: str | None = None

    @property
    def ok(self) -> bool:
        return self.action != "skipped"


def marker(key: str) -> str:
    return MARKER.format(key=key.replace("--", "-"))


def detect(environ: Mapping[str, str]) -> tuple[Target | None, str]:
    """The pull/merge request the CI job is for, or None and why not."""
    if environ.get("GITHUB_REPOSITORY"):
        number = _github_number(environ.get("GITHUB_EVENT_PATH"))
        if number is None:
            return None, ("not a pull request event (GITHUB_EVENT_PATH names no pull request "
                          "number): nothing to comment on")
        return Target("github", environ.get("GITHUB_API_URL") or "https://api.github.com",
                      environ["GITHUB_REPOSITORY"], number, environ.get("GITHUB_TOKEN") or None,
                      "GITHUB_TOKEN"), ""
    if environ.get("CI_API_V4_URL") and environ.get("CI_PROJECT_ID"):
        iid = environ.get("CI_MERGE_REQUEST_IID", "")
        if not iid.isdigit():
            return None, "not a merge request pipeline (CI_MERGE_REQUEST_IID is not set)"
        return Target("gitlab", environ["CI_API_V4_URL"], environ["CI_PROJECT_ID"], int(iid),
                      environ.get("GITLAB_TOKEN") or None, "GITLAB_TOKEN"), ""
    return None, ("no forge found: set GITHUB_REPOSITORY (GitHub Actions) or CI_API_V4_URL "
                  "and CI_PROJECT_ID (GitLab CI)")


def _github_number(event_path: str | None) -> int | None:
    if not event_path:
        return None
    try:
        event = json.loads(Path(event_path).read_text())
    except (OSError, ValueError):
        return None
    for holder in (event.get("pull_request"), event.get("issue"), event):
        if isinstance(holder, dict) and isinstance(holder.get("number"), int):
            return int(holder["number"])
    return None


def post_or_update(target: Target, body: str, key: str) -> CommentResult:
    """Create the report's comment, or update the one holding its marker in place."""
    secrets = Secrets({target.token: target.token_name} if target.token else {})
    if not target.token:
        return CommentResult("skipped", f"{target.token_name} is not set: cannot comment on "
                             f"{_what(target)}")
    text = f"{marker(key)}\n{body}"
    try:
        existing = _find(target, marker(key))
        if existing is None:
            url, data = _comments_url(target), {"body": text}
            reply = _call(target, "POST", url, data)
            return CommentResult("created", f"commented on {_what(target)}", _link(reply))
        reply = _call(target, "PATCH" if target.forge == "github" else "PUT",
                      _comment_url(target, existing), {"body": text})
        return CommentResult("updated", f"updated the comment on {_what(target)}",
                             _link(reply))
    except urllib.error.HTTPError as exc:
        return CommentResult("skipped", secrets.scrub(_http_problem(target, exc)))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return CommentResult("skipped", secrets.scrub(
            f"cannot reach {target.api_url}: {reason}"))


def _what(target: Target) -> str:
    kind = "pull request" if target.forge == "github" else "merge request"
    return f"{kind} {target.project}#{target.number}" if target.forge == "github" else \
        f"{kind} !{target.number} of project {target.project}"


def _http_problem(target: Target, exc: urllib.error.HTTPError) -> str:
    if exc.code in (401, 403):
        hint = ("the token may not write here: fork pull requests get a read-only "
                "GITHUB_TOKEN; the workflow needs `permissions: pull-requests: write`"
                if target.forge == "github" else
                "GITLAB_TOKEN needs the `api` scope and at least the Reporter role")
        return f"{target.forge} refused the comment (HTTP {exc.code}): {hint}"
    return f"{target.forge} answered HTTP {exc.code} {exc.reason} to the comment"


def _base(target: Target) -> str:
    api = target.api_url.rstrip("/")
    if target.forge == "github":
        return f"{api}/repos/{target.project}/issues"
    return (f"{api}/projects/{urllib.parse.quote(target.project, safe='')}"
            f"/merge_requests/{target.number}/notes")


def _comments_url(target: Target) -> str:
    if target.forge == "github":
        return f"{_base(target)}/{target.number}/comments"
    return _base(target)


def _comment_url(target: Target, comment_id: int) -> str:
    if target.forge == "github":
        return f"{_base(target)}/comments/{comment_id}"
    return f"{_base(target)}/{comment_id}"


def _find(target: Target, mark: str) -> int | None:
    """The id of the comment holding `mark` (the newest if several), or None."""
    found = None
    for page in range(1, MAX_PAGES + 1):
        url = f"{_comments_url(target)}?per_page=100&page={page}"
        comments = _call(target, "GET", url)
        if not isinstance(comments, list):
            return found
        for comment in comments:
            if isinstance(comment, dict) and mark in str(comment.get("body") or "") and \
                    isinstance(comment.get("id"), int):
                found = comment["id"]
        if len(comments) < 100:
            return found
    return found


def _call(target: Target, method: str, url: str, data: dict[str, Any] | None = None) -> Any:
    headers = {"Accept": "application/json", "User-Agent": "tether"}
    if target.forge == "github":
        headers.update({"Authorization": f"Bearer {target.token}",
                        "Accept": "application/vnd.github+json",
                        "X-GitHub-Api-Version": "2022-11-28"})
    else:
        headers["PRIVATE-TOKEN"] = str(target.token)
    body = None
    if data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _link(reply: Any) -> str | None:
    if isinstance(reply, dict):
        url = reply.get("html_url") or reply.get("web_url")
        return str(url) if url else None
    return None
