"""A training run folder: its record (run.json), its models, and the checkpoint selection's record.

Written by :func:`exo.learn.sac.train` (layout in :mod:`exo.learn.sac`) and
:func:`exo.learn.selection.select_checkpoint` (``selection.json``, ``selection.csv``);
read by :mod:`exo.learn.export` and ``exo export-policy --which``. No torch here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exo.records import json_safe

#: File names :func:`exo.learn.selection.select_checkpoint` writes into the run folder.
SELECTION_JSON = "selection.json"
SELECTION_CSV = "selection.csv"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def selected_model(run_dir: str | Path) -> Path:
    """The model chosen by the last :func:`exo.learn.selection.select_checkpoint` of a run.

    Raises:
        FileNotFoundError: the run has no selection yet, or its model was deleted since.
    """
    path = Path(run_dir) / SELECTION_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `exo select-checkpoint {run_dir}` first")
    model = Path(run_dir) / json.loads(path.read_text())["selected"]["model"]
    if not model.is_file():
        raise FileNotFoundError(f"{model} (selected in {path}) no longer exists")
    return model


@dataclass
class RunDir:
    """Paths and records of one training run folder (layout in :mod:`exo.learn.sac`)."""

    root: Path

    @property
    def record_path(self) -> Path:
        return self.root / "run.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def read_record(self) -> dict[str, Any]:
        if not self.record_path.is_file():
            raise FileNotFoundError(f"{self.root} is not a training run (no run.json)")
        return json.loads(self.record_path.read_text())

    def write_record(self, record: dict[str, Any]) -> None:
        write_atomic(self.record_path, json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n")

    def latest(self) -> dict[str, Any] | None:
        path = self.checkpoints / "latest.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def model_path(self, which: str = "best") -> Path:
        """The model zip of "best", "final", "latest" (newest checkpoint), "selected"
        (:func:`exo.learn.selection.select_checkpoint`'s choice) or a checkpoint's step count."""
        if which == "selected":
            return selected_model(self.root)
        if which.isdigit():
            path = self.checkpoints / f"model_{int(which):09d}.zip"
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist (no checkpoint at {int(which):,} steps)")
            return path
        if which == "latest":
            latest = self.latest()
            if latest is None:
                raise FileNotFoundError(f"{self.root}: no checkpoint yet")
            path = self.checkpoints / latest["model"]
        elif which in ("best", "final"):
            path = self.root / which / "model.zip"
        else:
            raise ValueError(f"which must be best, final, latest, selected or a step count, got {which!r}")
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (the run has no {which} model yet)")
        return path
