# First get template's active version
TEMPLATE_ID="<template-uuid>"
VERSION_ID=$(curl -s -H "Coder-Session-Token: $CODER_SESSION_TOKEN" \
  "$CODER_URL/api/v2/templates/$TEMPLATE_ID" | jq -r '.active_version_id')

# Then get presets
curl -s -H "Coder-Session-Token: $CODER_SESSION_TOKEN" \
  "$CODER_URL/api/v2/templateversions/$VERSION_ID/presets" | jq
