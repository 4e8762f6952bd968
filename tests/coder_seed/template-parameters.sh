curl -s -H "Coder-Session-Token: $CODER_SESSION_TOKEN" \
  "$CODER_URL/api/v2/templateversions/$VERSION_ID/rich-parameters" | \
  jq '.[] | {name, required, default_value}'
