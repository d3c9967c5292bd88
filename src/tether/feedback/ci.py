"""`tether ci init github|gitlab`: a ready CI definition that runs, records, gates, reports.

Pull/merge requests: run the pipeline, push its refs and artifacts, post the report on the
request and gate it against the last main build. The main branch: the same run, pushed, so
it becomes the next "last main build". Both templates validate against the forges' own
schemas (tests run `check-jsonschema --builtin-schema vendor.github-workflows` and
`vendor.gitlab-ci`). docs/ci.md explains them and the one-time steps.
"""

from __future__ import annotations

from pathlib import Path

from tether.atomic import write_bytes
from tether.errors import UsageError

FORGES = ("github", "gitlab")
PATHS = {"github": ".github/workflows/tether.yml", "gitlab": ".gitlab-ci.yml"}

_GITHUB = """\
# Written by `tether ci init github{flag}`; see docs/ci.md in tether's documentation.
# Pull requests: run the pipeline, push the experiment, comment the report, gate it
# against the last main build. Pushes to {main}: the run that becomes that main build.
name: tether

on:
  push:
    branches: [{main}]
  pull_request:
  workflow_dispatch:
    inputs:
      stages:
        description: "stages to run (empty: the whole pipeline)"
        required: false
        default: ""

permissions:
  contents: write        # push refs/tether/* (experiment refs) to this repository
  pull-requests: write   # post and update the report comment

concurrency:
  group: tether-${{{{ github.ref }}}}
  cancel-in-progress: true

env:
  TETHER_PACKAGE: tether   # the pip requirement that installs tether (pin it: tether==X.Y)
  TETHER_STAGES: ${{{{ inputs.stages }}}}
  MAIN_BRANCH: {main}

jobs:
  tether:
    runs-on: {runs_on}
    timeout-minutes: 360
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0   # the main branch's history: `tether gate` walks it
{python}
      - name: Cache tether's objects and run-cache
        uses: actions/cache@v4
        with:
          path: .tether/cache
          key: tether-${{{{ runner.os }}}}-${{{{ hashFiles('tether.lock') }}}}
          restore-keys: |
            tether-${{{{ runner.os }}}}-

      - name: Install
        run: |
          python -m pip install "$TETHER_PACKAGE"
          if [ -f requirements.txt ]; then python -m pip install -r requirements.txt; fi
          git config user.name "tether-ci"
          git config user.email "tether-ci@users.noreply.github.com"

      - name: Run the pipeline
        id: run
        continue-on-error: true   # a failed run is still recorded; the gate fails the job
        # To run on workers instead: tether run --queue ... (see docs/queue.md)
        run: tether run $TETHER_STAGES -m "CI ${{{{ github.event_name }}}} ${{{{ github.sha }}}}"

      - name: Push experiment refs and artifacts
        # Fork pull requests get a read-only token: their runs are reported, not pushed.
        if: >-
          github.event_name != 'pull_request' ||
          github.event.pull_request.head.repo.full_name == github.repository
        run: tether push

      - name: Report on the pull request
        if: github.event_name == 'pull_request'
        run: tether report --comment --against "$MAIN_BRANCH"
        env:
          GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}

      - name: Keep the full report
        if: always() && github.event_name == 'pull_request'
        uses: actions/upload-artifact@v4
        with:
          name: tether-report
          path: .tether/reports/
          if-no-files-found: ignore

      - name: Gate against the last main build
        if: github.event_name == 'pull_request'
        run: tether gate --md --against "$MAIN_BRANCH"

      - name: Fail when the main-branch run failed
        if: github.event_name != 'pull_request' && steps.run.outcome == 'failure'
        run: exit 1
"""

_GITHUB_PYTHON = """\
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
          cache: pip
"""

_GITHUB_PYTHON_SELF_HOSTED = """\
      - name: Python environment on the runner
        run: |
          python3 -m venv "$RUNNER_TEMP/venv"
          echo "$RUNNER_TEMP/venv/bin" >> "$GITHUB_PATH"
"""

_GITLAB = """\
# Written by `tether ci init gitlab{flag}`; see docs/ci.md in tether's documentation.
# Merge requests: run the pipeline, push the experiment, comment the report, gate it
# against the last main build. The default branch: the run that becomes that main build.
# Choose the stages from a push: git push -o ci.variable=TETHER_STAGES=train

workflow:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
    - if: $CI_PIPELINE_SOURCE == "web"

variables:
  GIT_DEPTH: "0"            # the default branch's history: `tether gate` walks it
  TETHER_PACKAGE: tether    # the pip requirement that installs tether (pin it: tether==X.Y)
  TETHER_STAGES: ""         # empty: the whole pipeline
  PIP_CACHE_DIR: "$CI_PROJECT_DIR/.cache/pip"

tether:
{runner}
  timeout: 6h
  cache:
    - key: tether-$CI_COMMIT_REF_SLUG
      fallback_keys:
        - tether-$CI_DEFAULT_BRANCH
      paths:
        - .tether/cache/
        - .cache/pip/
  before_script:
    - python3 -m venv "$CI_PROJECT_DIR/.venv-ci" && . "$CI_PROJECT_DIR/.venv-ci/bin/activate"
    - python -m pip install "$TETHER_PACKAGE"
    - if [ -f requirements.txt ]; then python -m pip install -r requirements.txt; fi
    - git config user.name "tether-ci"
    - git config user.email "tether-ci@$CI_SERVER_HOST"
    # Pushing refs/tether/* needs a token with write_repository (docs/ci.md).
    - |
      if [ -n "$GITLAB_TOKEN" ]; then
        git remote set-url --push origin \
          "https://tether-ci:$GITLAB_TOKEN@$CI_SERVER_HOST/$CI_PROJECT_PATH.git"
      fi
  script:
    - status=0
    # To run on workers instead: tether run --queue ... (see docs/queue.md)
    - tether run $TETHER_STAGES -m "CI $CI_PIPELINE_SOURCE $CI_COMMIT_SHA" || status=$?
    - tether push || echo "tether push failed; see docs/ci.md (GITLAB_TOKEN, artifact remote)"
    - |
      if [ -n "$CI_MERGE_REQUEST_IID" ]; then
        tether report --comment --against "$CI_DEFAULT_BRANCH"
        tether gate --md --against "$CI_DEFAULT_BRANCH"
      fi
    - exit $status
  artifacts:
    when: always
    expire_in: 30 days
    paths:
      - .tether/reports/
"""

_GITLAB_RUNNER = """\
  image: python:3.12"""

_GITLAB_RUNNER_SELF_HOSTED = """\
  tags:
    - gpu   # the tag you gave the runner on your GPU box (docs/ci.md)"""


def template(forge: str, *, self_hosted: bool = False, main: str = "main") -> str:
    """The CI definition for `forge` (github or gitlab)."""
    flag = " --self-hosted" if self_hosted else ""
    if forge == "github":
        return _GITHUB.format(
            flag=flag, main=main,
            runs_on="[self-hosted, gpu]" if self_hosted else "ubuntu-latest",
            python=_GITHUB_PYTHON_SELF_HOSTED if self_hosted else _GITHUB_PYTHON)
    if forge == "gitlab":
        return _GITLAB.format(
            flag=flag, runner=_GITLAB_RUNNER_SELF_HOSTED if self_hosted else _GITLAB_RUNNER)
    raise UsageError(f"unknown forge {forge!r}: expected github or gitlab")


def write_template(
    root: Path, forge: str, *, self_hosted: bool = False, main: str = "main",
    force: bool = False,
) -> Path:
    """Write the CI definition into the project; an existing file only with `force`."""
    text = template(forge, self_hosted=self_hosted, main=main)
    path = root / PATHS[forge]
    if path.exists() and not force:
        raise UsageError(f"{PATHS[forge]} already exists",
                         hint="pass --force to replace it, or merge the steps by hand "
                         "(print them with --print)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, text.encode())
    return path
