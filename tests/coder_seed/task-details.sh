curl -s -H "Coder-Session-Token: $CODER_SESSION_TOKEN" \
  "$CODER_URL/api/v2/tasks" | \
  jq '.tasks[] | select(.name=="<task-name>")'
