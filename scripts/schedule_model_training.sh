#!/usr/bin/env bash
# Scheduled retraining for cron (see deploy/crontab):
#   0 2 * * 0 /path/to/repo/scripts/schedule_model_training.sh
# Runs `python scripts/train_models.py --force --days-back 180` from the repository, appends its output with
# UTC timestamps to training.log (TRAINING_LOG overrides the path), rotates the log above 5 MB keeping 5 old
# files, logs the exit status, and exits with train_models.py's status (0 promoted, 1 not promoted, 2 usage).
# Extra arguments are passed on to train_models.py (e.g. --verbose).
# No `set -e`: a failed run must still reach the status line in the log.
set -u -o pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"
LOG="${TRAINING_LOG:-$REPO_DIR/training.log}"
MAX_BYTES="${TRAINING_LOG_MAX_BYTES:-5242880}"
KEEP=5

stamp() {
    local line now
    while IFS= read -r line || [ -n "$line" ]; do
        TZ=UTC printf -v now '%(%Y-%m-%dT%H:%M:%SZ)T' -1
        printf '%s %s\n' "$now" "$line"
    done
}

rotate() {
    [ -f "$LOG" ] || return 0
    local size
    size=$(wc -c <"$LOG" | tr -d ' ')
    [ "$size" -gt "$MAX_BYTES" ] || return 0
    rm -f "$LOG.$KEEP"
    local i
    for ((i = KEEP - 1; i >= 1; i--)); do
        [ -f "$LOG.$i" ] && mv -f "$LOG.$i" "$LOG.$((i + 1))"
    done
    mv -f "$LOG" "$LOG.1"
}

mkdir -p "$(dirname "$LOG")" || { echo "cannot create the directory of $LOG" >&2; exit 1; }
rotate
if ! cd "$REPO_DIR"; then
    echo "cannot cd to $REPO_DIR" | stamp >>"$LOG"
    exit 1
fi
if [ -x "$REPO_DIR/.venv/bin/python" ]; then
    PYTHON="$REPO_DIR/.venv/bin/python"
else
    PYTHON="python3"
fi

echo "scheduled training started: $PYTHON scripts/train_models.py --force --days-back 180 --trigger schedule $*" | stamp >>"$LOG"
"$PYTHON" scripts/train_models.py --force --days-back 180 --trigger schedule "$@" 2>&1 | stamp >>"$LOG"
status=${PIPESTATUS[0]}
echo "scheduled training finished with exit status $status" | stamp >>"$LOG"
exit "$status"
