# Create task
TASK=$(coder task create -q --template my-template --preset "Default" "Initial prompt")

# Wait for it to start
sleep 60

# Send follow-up instructions
coder task send "$TASK" "Focus on error handling first"

# Later, provide more context
coder task send "$TASK" "The auth module is in src/auth/"
