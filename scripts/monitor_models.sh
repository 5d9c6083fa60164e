#!/bin/bash
# monitor_models.sh: the guide's monitoring script.
# Prints the live model's version, training date and accuracy, and a WARNING when the accuracy is below
# THRESHOLD (default 0.7), then the service's status level and a "WARNING: ..." line for each problem it
# reports, and a "WARNING: alert firing: ..." line for each other alert the alert engine reports as firing
# (not acknowledged or silenced). Exits 0 (also after a warning), 1 while the alert engine reports an
# alert firing (metric thresholds aside: THRESHOLD's business), 2 when the API cannot be reached, 3 when no
# model is trained.
# MODEL_API_URL overrides the server (default http://localhost:8028).

# shellcheck source=model_status.sh
source "$(dirname "${BASH_SOURCE[0]}")/model_status.sh"
ACCURACY=$(echo "$STATUS" | jq -r '.model_metadata.model_performance.accuracy')
VERSION=$(echo "$STATUS" | jq -r '.model_metadata.version')
TRAINING_DATE=$(echo "$STATUS" | jq -r '.model_metadata.training_date')

if [ "$IS_TRAINED" != "true" ] || ! [[ "$ACCURACY" =~ $NUMBER ]]; then
    echo "ERROR: no trained model with an accuracy at $MODEL_API_URL (is_trained=$IS_TRAINED); train one with scripts/train_models.py --force" >&2
    exit 3
fi

echo "Model Version: $VERSION"
echo "Training Date: $TRAINING_DATE"
echo "Accuracy: $ACCURACY"

if (( $(echo "$ACCURACY < $THRESHOLD" | bc -l) )); then
    echo "WARNING: Model accuracy below recommended threshold"
fi
echo "Status: $LEVEL"
echo "$STATUS" | jq -r '.problems[]? | "WARNING: " + .'
firing_lines "WARNING: alert firing: " "$(echo "$STATUS" | jq -c '[.alerts[]?.kind]')"
if [ -n "$ALERTS_ERROR" ]; then
    echo "WARNING: $ALERTS_ERROR"
fi
if [ "$FIRING_COUNT" -gt 0 ]; then
    exit 1
fi
