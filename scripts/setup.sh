#!/usr/bin/env bash
# Prepares a fresh machine: a project venv with brainstream and its dev tools, and the system
# packages the local services need (Java 17+ and Maven for Kafka; Postgres is handled by
# `brainstream dev up`). Idempotent and quiet when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
# the dashboard's end-to-end test drives Debian's Chromium (no browser download from elsewhere)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# benchmarks/web_overhead.py's load generator
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "brainstream needs Python >= 3.11 (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need_apt[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "please install: ${need_apt[*]} (Java 17+ and Maven run the local Kafka; Chromium runs the dashboard test; wrk loads the web benchmark)" >&2
    exit 1
  fi
fi

stamp=.venv/.brainstream-installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[all,dev,bench]"
  touch "$stamp"
fi
