#!/usr/bin/env bash
# One line per component; exit status 0 only when both are running.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

rc=0
"$TI_LOCAL_DIR/pg.sh" status || rc=1
"$TI_LOCAL_DIR/kafka.sh" status || rc=1
exit "$rc"
