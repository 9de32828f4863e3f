"""Where exo finds its installed data (config, launch, urdf, models, bags).

Resolution order:

1. ``$EXO_SHARE_DIR`` if set (a folder holding ``config/``, ``launch/``, ...);
2. the source tree next to this package (pip editable install, a git checkout);
3. ``share/exo_bringup`` of a ROS 2 install space (``colcon build``), via ament_index.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

PACKAGE = "exo_bringup"


@cache
def share_dir() -> Path:
    """The folder holding ``config/``, ``launch/`` and ``urdf/``."""
    env = os.environ.get("EXO_SHARE_DIR")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parents[1]  # src/exo_bringup (config/ is a link to the top level)
    if (source / "config").is_dir():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # noqa: BLE001 - any failure means "not found"
        raise FileNotFoundError(
            f"cannot find exo's data: no source tree at {source} and no {PACKAGE} share directory "
            f"in AMENT_PREFIX_PATH ({exc}); set EXO_SHARE_DIR"
        ) from exc


def repo_root() -> Path | None:
    """The git checkout this package runs from, if any (for the commit in artefact cards)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / ".git").exists() else None


def config_file(name: str) -> Path:
    """Path of ``config/<name>``; a clear error if it does not exist."""
    path = share_dir() / "config" / name
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    return path


def models_dir() -> Path:
    """Folder of committed trained models (policies, intent models) with their cards."""
    return share_dir() / "models"


def write_private_file(path: Path | str, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` as a file only its owner can read (created 0600; truncated if it exists)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path
