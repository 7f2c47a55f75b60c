#!/usr/bin/env bash
# Entry point of the idprov GitHub Action (action.yml): install idprov if it
# is not on PATH, run the conformance check with the Action's inputs, and
# write the Markdown report to the job summary. `.ci/run` runs this very
# script against the embedded reference server, so what the Action does is
# tested with the project.
#
# Inputs (environment, as a composite Action passes them):
#   IDPROV_URL            directory URL of the server under test (empty: the
#                         embedded reference server and client are checked)
#   IDPROV_CA_CERT, IDPROV_ADMIN_CERT, IDPROV_ADMIN_KEY   files, with a URL
#   IDPROV_CASES          --cases patterns (optional)
#   IDPROV_STRICT         "true" for --strict
#   IDPROV_KNOWN_FAILING  a known-failing file (optional)
#   IDPROV_REPORT_DIR     where reports go (default idprov-reports)
#   IDPROV_SOURCE         a checkout of idprov to install from when idprov is
#                         not on PATH (default: this script's repository)
#   GITHUB_STEP_SUMMARY   set by GitHub Actions: the job summary file
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
report_dir="${IDPROV_REPORT_DIR:-idprov-reports}"

if ! command -v idprov >/dev/null 2>&1; then
  echo "idprov not on PATH: installing from ${IDPROV_SOURCE:-$here}" >&2
  cargo install --locked --path "${IDPROV_SOURCE:-$here}" >&2
fi

args=(check)
if [ -n "${IDPROV_URL:-}" ]; then
  args+=(server --url "$IDPROV_URL" --ca-cert "${IDPROV_CA_CERT:?IDPROV_CA_CERT is required with a URL}"
         --admin-cert "${IDPROV_ADMIN_CERT:?IDPROV_ADMIN_CERT is required with a URL}"
         --admin-key "${IDPROV_ADMIN_KEY:?IDPROV_ADMIN_KEY is required with a URL}")
fi
[ -n "${IDPROV_CASES:-}" ] && args+=(--cases "$IDPROV_CASES")
[ "${IDPROV_STRICT:-false}" = "true" ] && args+=(--strict)
[ -n "${IDPROV_KNOWN_FAILING:-}" ] && args+=(--known-failing "$IDPROV_KNOWN_FAILING")
args+=(--report-dir "$report_dir" --color never)

status=0
idprov "${args[@]}" || status=$?

# The job summary: the Markdown report (or why there is none).
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  if [ -f "$report_dir/report.md" ]; then
    cat "$report_dir/report.md" >> "$GITHUB_STEP_SUMMARY"
  else
    echo "idprov check wrote no report (exit $status)" >> "$GITHUB_STEP_SUMMARY"
  fi
fi
exit "$status"
