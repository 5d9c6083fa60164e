#!/bin/bash
# check_model_performance.sh: the guide's alert, as a script.
# Prints "ALERT: ..." when the live model's accuracy is below THRESHOLD (default 0.7) and exits 1;
# exits 0 when it is fine, 2 when the API cannot be reached or answers garbage, 3 when no model is trained.
# MODEL_API_URL overrides the server (default http://localhost:8028).

# shellcheck source=model_status.sh
source "$(dirname "${BASH_SOURCE[0]}")/model_status.sh"
CURRENT_ACCURACY=$(echo "$STATUS" | jq -r '.model_metadata.model_performance.accuracy')

if [ "$IS_TRAINED" != "true" ] || ! [[ "$CURRENT_ACCURACY" =~ $NUMBER ]]; then
    echo "ERROR: no trained model with an accuracy at $MODEL_API_URL (is_trained=$IS_TRAINED, accuracy=$CURRENT_ACCURACY); train one with scripts/train_models.py --force" >&2
    exit 3
fi

if (( $(echo "$CURRENT_ACCURACY < $THRESHOLD" | bc -l) )); then
    echo "ALERT: Model accuracy ($CURRENT_ACCURACY) below threshold ($THRESHOLD)"
    # Send alert (email, Slack, etc.)
    exit 1
fi
echo "OK: Model accuracy ($CURRENT_ACCURACY) at or above threshold ($THRESHOLD)"
