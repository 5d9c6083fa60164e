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

# The alert engine's open alerts into ALERTS (GET alerts; the server evaluates its rules every 30 s, and on
# this read when the model files changed since). ALERTS_ERROR says why they could not be read.
ALERTS_ERROR=""
if ! ALERTS=$(curl -s --fail --max-time 30 "$MODEL_API_URL/api/predictions/alerts") || ! echo "$ALERTS" | jq -e '.alerts' >/dev/null 2>&1; then
    ALERTS='{"alerts": []}'
    ALERTS_ERROR="cannot get the alerts from $MODEL_API_URL/api/predictions/alerts"
fi
# Firing alerts (neither acknowledged nor silenced) but metric thresholds, which THRESHOLD decides here.
FIRING='[.alerts[]? | select(.state == "firing" and .kind != "metric_below_threshold")]'
FIRING_COUNT=$(echo "$ALERTS" | jq "$FIRING | length")

# firing_lines PREFIX SKIP: one line per firing alert whose kind is not in SKIP (a JSON list of kinds).
firing_lines() {
    echo "$ALERTS" | jq -r --arg prefix "$1" --argjson skip "$2" "$FIRING"'[] | select((.kind as $k | $skip | index($k)) | not)
        | $prefix + .rule + " (" + .level + ", firing since " + .fired_at[0:16] + " UTC, alert " + (.id | tostring) + "): " + .message'
}
