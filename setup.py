"""Build hook: the viewer's front-end (web/) is built into tether/web/static/ with the package.

Everything else is in pyproject.toml. `pip wheel .` / `python -m build` from a checkout run
scripts/build-web.sh (npm ci + vite build, a no-op when up to date) before copying the
package, so the wheel ships static/. Without npm the wheel is built without the front-end
and `tether view` says how to build it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


class BuildPyWithWeb(build_py):
    def run(self) -> None:
        script = ROOT / "scripts" / "build-web.sh"
        if (ROOT / "web" / "package.json").is_file() and shutil.which("npm"):
            subprocess.run(["bash", str(script)], check=True)
        super().run()


setup(cmdclass={"build_py": BuildPyWithWeb})
