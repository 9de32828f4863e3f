#!/usr/bin/env bash
# Vendor the console's charting library (uPlot, MIT) from the npm registry at a pinned version into
# src/exo_bringup/exo/console/static/vendor/, with its licence. The result is committed: the console
# needs no network at run time and no CDN. Run again only to change the version (then commit).
#
#   scripts/vendor_web.sh            (needs npm and the npm registry)
set -euo pipefail

UPLOT_VERSION=1.6.32
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=$root/src/exo_bringup/exo/console/static/vendor
command -v npm >/dev/null || { echo "vendor_web.sh: npm is missing (Debian: apt install npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null)
tar -xzf "$work/uplot-$UPLOT_VERSION.tgz" -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$dest/uPlot.iife.min.js"
cp "$work/package/dist/uPlot.min.css" "$dest/uPlot.min.css"
cp "$work/package/LICENSE" "$dest/uPlot.LICENSE"
printf 'uplot %s (npm registry), dist/uPlot.iife.min.js, dist/uPlot.min.css, LICENSE (MIT)\n' "$UPLOT_VERSION" \
  > "$dest/VERSIONS"
(cd "$dest" && sha256sum uPlot.iife.min.js uPlot.min.css uPlot.LICENSE >> VERSIONS)
echo "vendored uplot $UPLOT_VERSION into $dest"
