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
#   IDPROV_CA_KEY         the CA's private key, with a URL (optional: runs the
#                         cases that need it)
#   IDPROV_PLUGIN_CERT, IDPROV_PLUGIN_KEY   a plugin credential (optional)
#   IDPROV_RESTART_CMD    a command that restarts the server, with a URL
#                         (optional: runs the restart cases)
#   IDPROV_CLIENT_CMD     a device shim: checks that device (check client)
#                         instead of a server
#   IDPROV_CAPABILITIES   --capabilities, comma-separated (optional)
#   IDPROV_SCENARIO       case files or directories to run beside the
#                         catalogue, space-separated (optional)
#   IDPROV_CASES          --cases patterns (optional)
#   IDPROV_STRICT         "true" for --strict
#   IDPROV_ALLOW_INCONCLUSIVE "true" for --allow-inconclusive
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

# Inputs are passed on only when given: a missing one is idprov's to report
# (exit 2, one line, and the error report in the report directory).
args=(check)
if [ -n "${IDPROV_CLIENT_CMD:-}" ]; then
  args+=(client --cmd "$IDPROV_CLIENT_CMD")
elif [ -n "${IDPROV_URL:-}" ]; then
  args+=(server --url "$IDPROV_URL")
  [ -n "${IDPROV_CA_CERT:-}" ] && args+=(--ca-cert "$IDPROV_CA_CERT")
  [ -n "${IDPROV_ADMIN_CERT:-}" ] && args+=(--admin-cert "$IDPROV_ADMIN_CERT")
  [ -n "${IDPROV_ADMIN_KEY:-}" ] && args+=(--admin-key "$IDPROV_ADMIN_KEY")
  [ -n "${IDPROV_CA_KEY:-}" ] && args+=(--ca-key "$IDPROV_CA_KEY")
  [ -n "${IDPROV_PLUGIN_CERT:-}" ] && args+=(--plugin-cert "$IDPROV_PLUGIN_CERT")
  [ -n "${IDPROV_PLUGIN_KEY:-}" ] && args+=(--plugin-key "$IDPROV_PLUGIN_KEY")
  [ -n "${IDPROV_RESTART_CMD:-}" ] && args+=(--restart-cmd "$IDPROV_RESTART_CMD")
  [ -n "${IDPROV_KILL_CMD:-}" ] && args+=(--kill-cmd "$IDPROV_KILL_CMD")
  [ -n "${IDPROV_START_CMD:-}" ] && args+=(--start-cmd "$IDPROV_START_CMD")
fi
[ -n "${IDPROV_CAPABILITIES:-}" ] && args+=(--capabilities "$IDPROV_CAPABILITIES")
for s in ${IDPROV_SCENARIO:-}; do args+=(--scenario "$s"); done
[ -n "${IDPROV_CASES:-}" ] && args+=(--cases "$IDPROV_CASES")
[ "${IDPROV_STRICT:-false}" = "true" ] && args+=(--strict)
[ "${IDPROV_ALLOW_INCONCLUSIVE:-false}" = "true" ] && args+=(--allow-inconclusive)
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
