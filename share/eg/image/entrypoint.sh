#!/bin/sh
# The kernel pod's command: EG's launch_kubernetes.py put its launch parameters in the env.
set -eu
: "${KERNEL_ID:?KERNEL_ID is required (set by Enterprise Gateway)}"
: "${RESPONSE_ADDRESS:=${EG_RESPONSE_ADDRESS:?RESPONSE_ADDRESS is required (set by Enterprise Gateway)}}"
: "${PUBLIC_KEY:=${EG_PUBLIC_KEY:?PUBLIC_KEY is required (set by Enterprise Gateway)}}"
PORT_RANGE="${PORT_RANGE:-${EG_PORT_RANGE:-0..0}}"
# exec: the kernel is PID 1 and gets the pod's SIGTERM itself (it handles it: clean shutdown)
exec python -m geokernel launch --kernel-id "$KERNEL_ID" --response-address "$RESPONSE_ADDRESS" \
    --public-key "$PUBLIC_KEY" --port-range "$PORT_RANGE"
