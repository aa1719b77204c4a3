#!/usr/bin/env bash
# Copies the MultiLangDaemon's runtime jars listed in kcl/pom.xml into a folder
# (default: kcl/lib). The local setup and the container image both call this
# script, so the daemon runs on the same jars everywhere.
# Usage: kcl/fetch-jars.sh [output-dir]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "${1:-$here/lib}"
# Maven resolves a relative outputDirectory against the POM's folder, not the caller's.
out="$(cd "${1:-$here/lib}" && pwd)"
# -B, --no-transfer-progress, style.color=never: no colour codes or progress lines in a log.
mvn -q -B --no-transfer-progress -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$out" >&2
