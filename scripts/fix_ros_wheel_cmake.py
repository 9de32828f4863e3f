"""Point the ROS 2 wheels' exported CMake files at this machine's Python and NumPy.

The ``ros-*`` wheels on PyPI were built in a manylinux container and their
``share/*/cmake/*.cmake`` files still name that container's include directories
(``/opt/python/cp311-cp311/include/python3.11`` and its NumPy include dir).
CMake then fails when building an interface package (exo_msgs) against them.
This script rewrites those paths, in place, to ``sysconfig``'s include path and
``numpy.get_include()`` of the running interpreter. It is idempotent and prints
how many files it changed.

Usage: ``python scripts/fix_ros_wheel_cmake.py PREFIX`` (PREFIX = the venv).
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PYTHON_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+t?/include/python[\d.]+t?")
BUILD_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp\d+-cp\d+t?/lib/python[\d.]+t?/site-packages/numpy/(?:_core|core)/include"
)


def main(prefix: Path) -> int:
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    if not (Path(py_include) / "Python.h").is_file():
        print(f"error: Python headers missing: {py_include}/Python.h (install python3-dev)", file=sys.stderr)
        return 1
    changed = 0
    for path in (prefix / "share").glob("*/cmake/*.cmake"):
        text = path.read_text()
        new = BUILD_NUMPY_INCLUDE.sub(np_include, text)
        new = BUILD_PYTHON_INCLUDE.sub(py_include, new)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"fix_ros_wheel_cmake: rewrote {changed} file(s) under {prefix / 'share'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]).resolve()))
