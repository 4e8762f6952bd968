#!/bin/bash
TASK_NAME=$(coder task create -q \
  --template my-template \
  --preset "Default" \
  "Fix the authentication bug")

echo "Created task: $TASK_NAME"

# Wait for active state
while true; do
  STATUS=$(coder task status "$TASK_NAME" 2>/dev/null | awk 'NR==2 {print $2}')
  STATE=$(coder task status "$TASK_NAME" 2>/dev/null | awk 'NR==2 {print $4}')
  
  echo "Status: $STATUS, State: $STATE"
  
  if [[ "$STATUS" == "active" && "$STATE" == "idle" ]]; then
    echo "Task completed!"
    break
  elif [[ "$STATUS" == "error" ]]; then
    echo "Task failed!"
    exit 1
  fi
  
  sleep 30
done

# Show results
coder task logs "$TASK_NAME"
