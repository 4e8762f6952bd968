# With preset (recommended)
coder task create --template Tasks-test-preinstall \
  --preset "Real World App: Angular + Django" \
  "Add dark mode to the frontend"

# With custom name
coder task create --template my-template \
  --preset "Default" \
  --name "dark-mode-task" \
  "Implement dark mode toggle"

coder task create --template my-template "Fix the bug in auth.py"
