# Sourced by check_model_performance.sh and monitor_models.sh: validates THRESHOLD, fetches the live
# model's status from MODEL_API_URL into STATUS, IS_TRAINED and LEVEL (green, amber or red), and exits 2
# with a clear message on failure.

MODEL_API_URL="${MODEL_API_URL:-http://localhost:8028}"
THRESHOLD="${THRESHOLD:-0.7}"
NUMBER='^[0-9]*\.?[0-9]+$'

if ! [[ "$THRESHOLD" =~ $NUMBER ]]; then
    echo "ERROR: THRESHOLD must be a number such as 0.7, got '$THRESHOLD'" >&2
    exit 2
fi

if ! STATUS=$(curl -s --fail --max-time 10 "$MODEL_API_URL/api/predictions/models/status"); then
    echo "ERROR: cannot get the model status from $MODEL_API_URL/api/predictions/models/status (is the service running?)" >&2
    exit 2
fi
if ! IS_TRAINED=$(echo "$STATUS" | jq -r '.is_trained' 2>/dev/null); then
    echo "ERROR: $MODEL_API_URL did not answer with JSON; is MODEL_API_URL pointing at the model service?" >&2
    exit 2
fi
LEVEL=$(echo "$STATUS" | jq -r '.level // "green"')
