"""Moving a project to tether from another tool (`tether init --from-dvc`)."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tether.migrate.dvc_data import DataReport
from tether.migrate.dvc_yaml import Conversion
from tether.structs import struct

DVC_YAML = "dvc.yaml"


@struct(frozen=True)
class DvcMigration:
    """What `init_from_dvc` wrote and found."""

    conversion: Conversion
    created: list[Path]
    data: DataReport


def init_from_dvc(root: Path, *, force: bool = False) -> DvcMigration:
    """Write `tether.yaml` from `dvc.yaml` (+ `params.yaml`, vars files) and track the
    data of the `.dvc` pointers; refuses to overwrite a spec unless `force`."""
    from tether.errors import UsageError
    from tether.gitstore.git import Git
    from tether.migrate.dvc_data import convert_pointers
    from tether.migrate.dvc_yaml import convert
    from tether.project import init_project, object_store

    dvc_yaml = root / DVC_YAML
    if dvc_yaml.is_file():
        conversion = convert(dvc_yaml.read_text(), lambda rel: _read_file(root, rel))
    elif (root / ".dvc").is_dir():
        conversion = Conversion(text=_EMPTY_SPEC, notes=["no dvc.yaml: no stages to convert"],
                                stages=[])
    else:
        raise UsageError(f"{root} has neither {DVC_YAML} nor .dvc/",
                         hint="run `tether init --from-dvc` at the top of a DVC project")
    from tether.migrate.dvc_data import data_section, dvc_imports

    text = conversion.text + data_section(dvc_imports(Git(root)))
    created = init_project(root, force=force, spec_text=text)
    data = convert_pointers(Git(root), object_store(root))
    return DvcMigration(conversion=conversion, created=created, data=data)


_EMPTY_SPEC = """\
# Converted by `tether init --from-dvc`: the DVC project had no dvc.yaml.
version: 1
stages: {}
"""


def _read_file(root: Path, rel: str) -> Mapping[str, Any] | None:
    """A params or vars file (YAML or JSON) inside the project; None if absent or unreadable."""
    import yaml

    from tether.pathguard import unsafe_reason

    rel = posixpath.normpath(rel)
    if unsafe_reason(rel) is not None:
        return None
    path = root / rel
    try:
        text = path.read_text()
        data = json.loads(text) if rel.endswith(".json") else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None
    return data if isinstance(data, Mapping) else None
