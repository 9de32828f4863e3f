#!/usr/bin/env bash
# Set up exo on a fresh machine: a virtual environment with ROS 2 Kilted (PyPI
# wheels), torch (CPU), MuJoCo and MyoLeg, the exo_msgs interfaces built into it,
# and exo installed editable. Idempotent: each step is skipped when its inputs
# have not changed since it last succeeded (stamps in $EXO_VENV/.exo-stamps).
#
#   scripts/setup.sh            set up (or update) ./.venv
#   EXO_VENV=/path scripts/setup.sh   use another venv location
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${EXO_VENV:-$root/.venv}
python=${EXO_PYTHON:-python3}
stamps=$venv/.exo-stamps

say() { printf '\033[1m[exo setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[exo setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- system prerequisites ----------------------------------------------------
command -v "$python" >/dev/null || die "no '$python' on PATH: install Python 3.10-3.13 (Debian: apt install python3 python3-venv)"
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$pyver" in 3.10|3.11|3.12|3.13) ;; *) die "Python $pyver found; the ROS 2 Kilted wheels exist for 3.10-3.13 only (set EXO_PYTHON)";; esac
"$python" -c 'import venv, ensurepip' 2>/dev/null || die "Python's venv/ensurepip module is missing (Debian: apt install python3-venv)"
"$python" - <<'PY' || die "Python headers (Python.h) are missing, needed to build exo_msgs (Debian: apt install python3-dev)"
import pathlib, sys, sysconfig
sys.exit(0 if (pathlib.Path(sysconfig.get_paths()["include"]) / "Python.h").is_file() else 1)
PY
for tool in cmake gcc g++ make; do
  command -v "$tool" >/dev/null || die "'$tool' is missing, needed to build exo_msgs (Debian: apt install cmake build-essential)"
done

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$stamps/$1" ] && [ "$(cat "$stamps/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$stamps"; echo "$2" > "$stamps/$1"; }

# --- virtual environment and pinned dependencies -----------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment $venv (Python $pyver)"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
deps_hash=$(hash_of "$root/requirements.txt" "$root/constraints.txt")
if ! stamp_ok deps "$deps_hash"; then
  say "installing pinned dependencies (first time: about 3 minutes)"
  "${pip[@]}" install --quiet --upgrade "pip>=24" 2>&1 | grep -v "is ignored: it is neither" || true
  # constraints.txt locks every transitive version (torch stays the CPU build).
  "${pip[@]}" install --quiet -r "$root/requirements.txt" -c "$root/constraints.txt" 2>&1 \
    | grep -v "is ignored: it is neither" || true
  "${pip[@]}" check >/dev/null 2>&1 || say "note: pip check reports issues (see '$venv/bin/pip check')"
  "$venv/bin/python" -c "import rclpy, torch, mujoco" 2>/dev/null || die "dependency install failed (see pip output above)"
  stamp_set deps "$deps_hash"
  rm -f "$stamps/msgs"  # new wheels: rewrite their CMake files and rebuild the interfaces
fi

# --- exo_msgs: rosidl interfaces built with plain CMake into the venv --------
msgs_hash=$(hash_of "$root"/src/exo_msgs/CMakeLists.txt "$root"/src/exo_msgs/package.xml "$root"/src/exo_msgs/msg/*.msg "$root/scripts/fix_ros_wheel_cmake.py")
if ! stamp_ok msgs "$msgs_hash" || ! "$venv/bin/python" -c "import exo_msgs.msg" 2>/dev/null; then
  say "building exo_msgs into the venv (about 30 s)"
  "$venv/bin/python" "$root/scripts/fix_ros_wheel_cmake.py" "$venv"
  build=$venv/.exo-build/exo_msgs
  rm -rf "$build"
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  log=$venv/.exo-build/exo_msgs.log
  mkdir -p "$(dirname "$log")"
  if ! { cmake -S "$root/src/exo_msgs" -B "$build" "${gen[@]}" -DBUILD_TESTING=OFF \
          -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
          -DPython3_EXECUTABLE="$venv/bin/python" \
       && cmake --build "$build" -j "$(nproc)" && cmake --install "$build"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "building exo_msgs failed; full log: $log"
  fi
  "$venv/bin/python" -c "import exo_msgs.msg" || die "exo_msgs built but does not import"
  stamp_set msgs "$msgs_hash"
fi

# --- exo itself, editable ----------------------------------------------------
proj_hash=$(hash_of "$root/pyproject.toml")
if ! stamp_ok project "$proj_hash" || ! "$venv/bin/python" -c "import exo" 2>/dev/null; then
  say "installing exo (editable)"
  "${pip[@]}" install --quiet --no-deps --no-build-isolation -e "$root" 2>&1 | grep -v "is ignored: it is neither" || true
  "$venv/bin/python" -c "import exo" || die "exo did not install"
  stamp_set project "$proj_hash"
fi
# --- Chromium for the console's browser test (Debian's packages; nothing is downloaded at test time) ---
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's chromium and chromium-driver (the console's browser test)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
      apt-get update -q >/dev/null 2>&1 || true
      apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
        || say "note: apt-get could not install chromium chromium-driver: the console's browser test will be skipped"
    fi
  else
    say "note: no chromium/chromedriver: the console's browser test will be skipped (Debian: sudo apt install chromium chromium-driver)"
  fi
fi
say "ready: $venv  (activate with: . $venv/bin/activate)"
