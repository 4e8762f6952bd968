# Get template info
TEMPLATE_NAME="Tasks-test-preinstall"

# Get template's active version ID
VERSION_ID=$(curl -s -H "Coder-Session-Token: $CODER_SESSION_TOKEN" \
  "$CODER_URL/api/v2/templates" | \
  jq -r ".[] | select(.name==\"$TEMPLATE_NAME\") | .active_version_id")

# List presets
curl -s -H "Coder-Session-Token: $CODER_SESSION_TOKEN" \
  "$CODER_URL/api/v2/templateversions/$VERSION_ID/presets" | \
  jq '.[] | {name: .Name, default: .Default}'

coder task create \
  --template "$TEMPLATE_NAME" \
  --preset "Real World App: Angular + Django" \
  "Your prompt describing what the agent should do"
