"""What every result file records about how it was made, and how it is made strict JSON.

- :func:`git_info`: the commit and dirty flag of the checkout exo runs from;
- :func:`versions`: python and the libraries a result depends on;
- :func:`json_safe`: NaN/inf -> null, tuples -> lists, numpy scalars -> python.

Used by ``exo eval`` (summary.json), training runs (run.json), checkpoint selection,
policy export (policy.json), bag reports and recordings.
"""

from __future__ import annotations

import math
import platform
import subprocess
from typing import Any

import numpy as np

from exo import __version__
from exo.paths import repo_root


def git_info() -> dict[str, Any]:
    """Commit and dirty flag of the checkout exo runs from (None outside a git checkout)."""
    root = repo_root()
    if root is None:
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def versions() -> dict[str, str]:
    """Versions of python and the libraries a result depends on."""
    # mujoco and gymnasium load only when versions are recorded: json_safe users (bag reports, exo real) skip them
    import gymnasium
    import mujoco

    return {
        "python": platform.python_version(),
        "exo": __version__,
        "numpy": np.__version__,
        "mujoco": mujoco.__version__,
        "gymnasium": gymnasium.__version__,
    }


def json_safe(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), tuples -> lists, numpy scalars -> python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
