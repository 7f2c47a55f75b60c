#!/bin/sh
# A minimal device shim for `idprov check client`, written the way you would
# wrap your own device: it reads the IDPROV_* variables and runs the device.
# Here the "device" is idprov's own client (IDPROV_BIN, default `idprov`).
#
#   idprov check client --cmd "sh examples/shim/idprov-client-shim.sh"
set -u

# The features this device implements; anything else gets exit 89, which the
# suite reads as "not implemented" (skip), and it probes that first with
# IDPROV_FEATURE=__probe__.
case "${IDPROV_FEATURE:-}" in
  ""|discovery|csr|preprovisioned-ca|waiting|pinning|renewal|verification) ;;
  *) exit 89 ;;
esac

# An unset IDPROV_URL means: find the server by DNS-SD.
exec "${IDPROV_BIN:-idprov}" client \
  --url "${IDPROV_URL:-}" \
  --device-id "$IDPROV_DEVICE_ID" \
  --secret "${IDPROV_SECRET:-}" \
  --dir "$IDPROV_DIR" \
  --ca-cert "${IDPROV_CA:-}" \
  --timeout 60
