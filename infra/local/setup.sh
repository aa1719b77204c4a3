#!/usr/bin/env bash
# Installs what the project needs, on first use and again only when its inputs
# change: npm packages, the KCL MultiLangDaemon's jars (Maven), DynamoDB Local
# and its sqlite4java native library (Maven), moto (PyPI, project-local venv),
# then builds the TypeScript. Needs Node 20+, Java 17+ with Maven, Python 3.11+.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
local_dir="$root/.local"
mkdir -p "$local_dir"

# Bold only on a terminal: a log file or CI gets plain text, no escape codes.
if [ -t 2 ]; then step() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }; else step() { printf '[setup] %s\n' "$*" >&2; }; fi
# A step is redone when its marker is older than any of its inputs.
stale() { local marker=$1; shift; [ ! -f "$marker" ] || [ -n "$(find "$@" -newer "$marker" 2>/dev/null | head -n 1)" ]; }

for tool in node npm java mvn python3; do
  command -v "$tool" >/dev/null || { echo "[setup] missing $tool: install Node 20+, Java 17+ with Maven, Python 3.11+" >&2; exit 1; }
done

if stale node_modules/.package-lock.json package.json package-lock.json; then
  step "npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

if stale kcl/lib/.installed kcl/pom.xml; then
  step "KCL MultiLangDaemon jars (Maven -> kcl/lib)"
  rm -rf kcl/lib
  bash kcl/fetch-jars.sh "$root/kcl/lib"
  touch kcl/lib/.installed
fi

ddb="$local_dir/dynamodb-local"
if stale "$ddb/.installed" infra/local/pom.xml; then
  step "DynamoDB Local and sqlite4java (Maven -> .local/dynamodb-local)"
  rm -rf "$ddb"
  # -B, --no-transfer-progress, style.color=never: no colour codes or progress lines in a log.
  mvn -q -B --no-transfer-progress -Dstyle.color=never -f infra/local/pom.xml dependency:copy-dependencies -Dmdep.stripVersion=true -DoutputDirectory="$ddb/lib" >&2
  touch "$ddb/.installed"
fi

venv="$local_dir/venv"
if stale "$venv/.installed" infra/local/requirements.txt; then
  step "moto server (PyPI -> .local/venv)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r infra/local/requirements.txt >&2
  touch "$venv/.installed"
fi

step "TypeScript build (dist/)"
npx --no-install tsc -p tsconfig.json
