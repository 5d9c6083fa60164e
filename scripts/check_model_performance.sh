#!/bin/bash
# check_model_performance.sh: the guide's alert, as a script.
# Prints "ALERT: ..." when the live model's accuracy is below THRESHOLD (default 0.7), one "PROBLEM: ..."
# line for each other problem the service reports as red (a damaged file, a missing model, the database
# down, ...), and one "ALERT: <rule> (...): ..." line for each other alert the alert engine reports as
# firing (not acknowledged, not silenced: realised F1 low, drift, error rate, a hand-made change, ...);
# exits 1 on any of them, 0 when all is fine, 2 when the API cannot be reached or answers garbage,
# 3 when no model is trained.
# MODEL_API_URL overrides the server (default http://localhost:8028).

# shellcheck source=model_status.sh
source "$(dirname "${BASH_SOURCE[0]}")/model_status.sh"
CURRENT_ACCURACY=$(echo "$STATUS" | jq -r '.model_metadata.model_performance.accuracy')

if [ "$IS_TRAINED" != "true" ] || ! [[ "$CURRENT_ACCURACY" =~ $NUMBER ]]; then
    echo "ERROR: no trained model with an accuracy at $MODEL_API_URL (is_trained=$IS_TRAINED, accuracy=$CURRENT_ACCURACY); train one with scripts/train_models.py --force" >&2
    exit 3
fi

STATUS_CODE=0
if (( $(echo "$CURRENT_ACCURACY < $THRESHOLD" | bc -l) )); then
    echo "ALERT: Model accuracy ($CURRENT_ACCURACY) below threshold ($THRESHOLD)"
    STATUS_CODE=1
fi
# Metric thresholds are this script's own THRESHOLD's business; anything else red is a problem here too.
PROBLEMS=$(echo "$STATUS" | jq -r '.alerts[]? | select(.level == "red" and .kind != "metric_below_threshold") | "PROBLEM: " + .message')
if [ -n "$PROBLEMS" ]; then
    echo "$PROBLEMS"
    STATUS_CODE=1
fi
# Firing alerts, except those just printed as problems.
SHOWN=$(echo "$STATUS" | jq -c '[.alerts[]? | select(.level == "red") | .kind]')
FIRING_LINES=$(firing_lines "ALERT: " "$SHOWN")
if [ -n "$FIRING_LINES" ]; then
    echo "$FIRING_LINES"
fi
if [ "$FIRING_COUNT" -gt 0 ]; then
    STATUS_CODE=1
fi
if [ -n "$ALERTS_ERROR" ]; then
    echo "PROBLEM: $ALERTS_ERROR"
    STATUS_CODE=1
fi
if [ "$STATUS_CODE" -ne 0 ]; then
    # Send alert (email, Slack, etc.)
    exit "$STATUS_CODE"
fi
echo "OK: Model accuracy ($CURRENT_ACCURACY) at or above threshold ($THRESHOLD)"
