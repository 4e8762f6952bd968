#!/bin/bash
PROMPTS=(
  "Add unit tests for user service"
  "Document the API endpoints"
  "Fix the CSS layout bug"
)

for PROMPT in "${PROMPTS[@]}"; do
  TASK_NAME=$(coder task create -q \
    --template my-template \
    --preset "Default" \
    "$PROMPT")
  echo "Created: $TASK_NAME"
done
