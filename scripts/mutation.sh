#!/usr/bin/env bash
# Mutation analysis of the reference server's and client's protocol code,
# with the conformance catalogue as the test (issue 24, reports/mutation.md).
#
#   scripts/mutation.sh [CARGO-MUTANTS OPTIONS]   e.g. --file src/core/validate.rs, --shard 3/20, --in-place
#   scripts/mutation.sh --ci                      CI's sampled run (below)
#
# By default the reference's protocol code is mutated (src/core, src/server,
# src/pki.rs, src/client); --file replaces that, and .cargo/mutants.toml
# leaves out what the catalogue does not run (with the reasons). Every mutant is tested by
# one test, tests/it/mutation_gate.rs: every server case against the reference
# server, every client case against the reference client (a process), and a
# short exploration, in about 30 s. A mutant that test survives is either
# equivalent or a gap in the catalogue; reports/mutation.md triages each.
# cargo-mutants writes its results to mutants.out/ (caught.txt, missed.txt,
# timeout.txt, unviable.txt, outcomes.json); this script then prints the
# score per file. A whole run is about 750 mutants, some 7 hours here; use
# --shard to spread it over machines.
#
# --ci: one mutant the catalogue must kill (the device-ID syntax check made to
# accept anything) is tested after an unmutated baseline, in place. It proves
# the harness, the gate and the tool work together; exit 1 if the baseline
# fails or the mutant survives.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
  cargo install --locked cargo-mutants --version "$version"
fi

gate=mutation_gate::the_reference_passes_the_catalogue_and_a_short_exploration
test_args=(-- --test it -- --ignored --exact "$gate")

if [ "${1:-}" = "--ci" ]; then
  out="${IDPROV_MUTATION_OUT:-target/mutation-ci}"
  rm -rf "$out"
  cargo mutants --no-config --in-place --no-shuffle --output "$out" \
    --file src/core/validate.rs \
    --re 'replace check_device_id -> Result<\(\), InvalidInput> with Ok\(\(\)\)' \
    --timeout 300 "${test_args[@]}" || true
  caught="$(wc -l <"$out/mutants.out/caught.txt")"
  missed="$(wc -l <"$out/mutants.out/missed.txt")"
  echo "mutation (sampled): $caught caught, $missed missed"
  if [ "$caught" -ne 1 ] || [ "$missed" -ne 0 ]; then
    echo "mutation: the known mutant was not caught; see $out/mutants.out" >&2
    exit 1
  fi
  exit 0
fi

files=()
case " $* " in
  *" --file "* | *" --file="* | *" -f "*) ;;
  *) files=(--file 'src/core/**/*.rs' --file 'src/server/**/*.rs' --file src/pki.rs --file 'src/client/**/*.rs') ;;
esac
status=0
cargo mutants --timeout 300 "${files[@]}" "$@" "${test_args[@]}" || status=$?
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: the table
# below says which; other codes are failures of the run itself.
case "$status" in 0 | 2 | 3) ;; *) exit "$status" ;; esac

out=mutants.out
prev=
for a in "$@"; do
  case "$a" in --output=*) out="${a#--output=}/mutants.out" ;; esac
  if [ "$prev" = --output ] || [ "$prev" = -o ]; then out="$a/mutants.out"; fi
  prev="$a"
done
echo
echo "score per file (killed = caught + timeout; unviable mutants do not build and are left out)"
printf '%-32s %6s %6s %7s %6s\n' file killed missed timeout score
for f in $(cat "$out"/caught.txt "$out"/missed.txt "$out"/timeout.txt 2>/dev/null | cut -d: -f1 | sort -u); do
  c=$(grep -c "^$f:" "$out/caught.txt" || true)
  m=$(grep -c "^$f:" "$out/missed.txt" || true)
  t=$(grep -c "^$f:" "$out/timeout.txt" || true)
  printf '%-32s %6d %6d %7d %5d%%\n' "$f" $((c + t)) "$m" "$t" $(((c + t) * 100 / (c + t + m)))
done
exit 0
