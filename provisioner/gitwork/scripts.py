"""The shell scripts Dockyard runs git with inside a workspace (pure: they are built here,
run by the engine).

Every value from a user reaches git as a positional argument of `sh -c SCRIPT NAME ARGS`
(never pasted into the script's text), after `--` where git takes options, so no value is
read as shell code or as an option. The setup's clone script is the exception: it joins
the template's setup script, so its values are quoted with shlex, and they were checked
first (gitwork.urls).

Every script prints its results as `@@key value` lines and sections (gitwork.parse reads
them); on a failure it prints `@@error` and the end of git's messages.
"""

from __future__ import annotations

import shlex

# what the checkpoint commits are made by: recognisable, never the agent's or a user's
IDENTITY_NAME = "Dockyard"
IDENTITY_EMAIL = "dockyard@localhost"
BASE_REF = "refs/dockyard/base"
CHECKPOINT_REF = "refs/dockyard/checkpoint"
# the exit code of a script that found no repository in the workspace
NO_REPOSITORY = 3
SCRIPT_NAME = "dockyard-git"
# a line the clone prints, which the follower reads to record the base commit
BASE_LINE = "dockyard-repo: base commit "
FAILED_LINE = "dockyard-repo: "

# Run main with git's messages kept aside: printed (the end of them) only on a failure.
# Hooks, a pager, prompts and the system's config stay out of every call.
_WRAP = """set -u
export GIT_TERMINAL_PROMPT=0 GIT_PAGER=cat GIT_CONFIG_NOSYSTEM=1 LC_ALL=C
err=$(mktemp) || exit 1
idx=""
trap 'rm -f "$err" ${idx:+"$idx"}' EXIT
g() { git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c commit.gpgsign=false "$@"; }
# the task's branch; else (a warm workspace claimed under another name) the one checked out
task_ref() {
  if g rev-parse -q --verify "refs/heads/$1^{commit}" >/dev/null; then
    echo "refs/heads/$1"
  else
    g symbolic-ref -q HEAD || echo HEAD
  fi
}
no_base() { echo "this workspace has no base commit (no repository was cloned)" >&2; return 4; }
@MAIN@
cd "$1" 2>"$err" || { echo "@@error"; cat "$err"; exit 1; }
shift
[ -d .git ] || { echo "@@error"; echo "no git repository in the workspace"; exit @NOREPO@; }
main "$@" 2>"$err" && exit 0
code=$?
echo "@@error"
tail -c 4000 "$err"
exit $code
"""

_CHECKPOINT = """main() {
  g add -A || return
  if g diff --cached --quiet; then
    echo "@@clean $(g rev-parse HEAD)"
    return 0
  fi
  g -c user.name=@NAME@ -c user.email=@EMAIL@ commit -q --no-verify -m "$1" || return
  g update-ref @CHECKPOINT@ HEAD || return
  echo "@@commit $(g rev-parse HEAD)"
}"""

# Against the base (or the last checkpoint): committed and uncommitted work, untracked
# files included (.gitignore respected), through a scratch index so the agent's own index
# is never touched.
_DIFF = """main() {
  base=$(g rev-parse -q --verify '@BASE@^{commit}') || { no_base; return; }
  from=$base
  if [ "$1" = checkpoint ]; then
    from=$(g rev-parse -q --verify '@CHECKPOINT@^{commit}' || echo "$base")
  fi
  idx=$(mktemp) || return
  cp .git/index "$idx" 2>/dev/null || true
  GIT_INDEX_FILE=$idx g add -A || return
  echo "@@base $base"
  echo "@@from $from"
  echo "@@head $(g rev-parse HEAD)"
  echo "@@branch $(g symbolic-ref -q --short HEAD || echo HEAD)"
  echo "@@commits"
  g log --format='%H%x09%an%x09%s' "$from..HEAD" -- || return
  echo "@@numstat"
  GIT_INDEX_FILE=$idx g diff --cached --numstat --no-renames "$from" -- || return
  if [ "$2" = full ]; then
    echo "@@diff"
    GIT_INDEX_FILE=$idx g diff --cached --binary --no-renames "$from" -- || return
  fi
}"""

_BUNDLE = """main() {
  base=$(g rev-parse -q --verify '@BASE@^{commit}') || { no_base; return; }
  ref=$(task_ref "$1")
  tip=$(g rev-parse -q --verify "$ref^{commit}") || {
    echo "no branch $1 in the workspace" >&2
    return 4
  }
  echo "@@base $base"
  echo "@@ref $ref"
  echo "@@tip $tip"
  if [ "$base" = "$tip" ]; then
    echo "@@empty"
    return 0
  fi
  f=$(mktemp) || return
  idx=$f
  g bundle create -q "$f" "$base..$ref" || return
  echo "@@bundle"
  base64 -w0 "$f" || return
  echo
}"""

# Both diffs a kept copy holds (against the base, and against the last checkpoint) in one
# run: a stopped workspace's helper container starts once, not twice, at a delete.
KEPT_DIFFS_SEPARATOR = "@@@@checkpoint"
_KEPT_DIFFS = (
    _DIFF.replace("main() {", "diff_of() {", 1)
    + """
main() {
  diff_of base full || return
  rm -f "$idx"
  echo "@KEPT_SEPARATOR@"
  diff_of checkpoint full
}"""
).replace("@KEPT_SEPARATOR@", KEPT_DIFFS_SEPARATOR)

_PUSH = """main() {
  remote=$1
  [ -n "$remote" ] || remote=origin
  ref=$(task_ref "$2")
  g push --porcelain -- "$remote" "$ref:refs/heads/$3" || return
  echo "@@pushed $(g rev-parse "$ref")"
}"""

_TOKENS = {
    "@NAME@": IDENTITY_NAME,
    "@EMAIL@": IDENTITY_EMAIL,
    "@BASE@": BASE_REF,
    "@CHECKPOINT@": CHECKPOINT_REF,
    "@NOREPO@": str(NO_REPOSITORY),
}


def _argv(body: str, workdir: str, *args: str) -> list[str]:
    script = _WRAP.replace("@MAIN@", body)
    for token, value in _TOKENS.items():
        script = script.replace(token, value)
    return ["sh", "-c", script, SCRIPT_NAME, workdir, *args]


def bounded(argv: list[str], seconds: int) -> list[str]:
    """`argv` killed after `seconds` (TERM, then KILL 5 s later): no git call hangs a
    pause or a delete."""
    return ["timeout", "-k", "5", str(seconds), *argv]


def checkpoint_argv(workdir: str, message: str) -> list[str]:
    """Commit everything (untracked files included) on the current branch as Dockyard."""
    return _argv(_CHECKPOINT, workdir, message)


def diff_argv(workdir: str, *, since_checkpoint: bool = False, full: bool = True) -> list[str]:
    """The work against the base commit (or the last checkpoint): commits, files, diff."""
    return _argv(
        _DIFF, workdir, "checkpoint" if since_checkpoint else "base", "full" if full else "stat"
    )


def kept_diffs_argv(workdir: str) -> list[str]:
    """The diff against the base, the separator line, then the one against the last
    checkpoint (both full), for the copy kept when the workspace goes."""
    return _argv(_KEPT_DIFFS, workdir)


def bundle_argv(workdir: str, branch: str) -> list[str]:
    """A git bundle of `branch` from the base commit on, base64 encoded."""
    return _argv(_BUNDLE, workdir, branch)


def push_argv(workdir: str, remote: str, branch: str, remote_branch: str) -> list[str]:
    """Push the task's branch to `remote` (a URL; empty: the cloned origin)."""
    return _argv(_PUSH, workdir, remote, branch, remote_branch)


def credential_helper(secret_path: str) -> str:
    """A git credential helper script that answers with the token in `secret_path`: the
    token is read from the 0600 file when git asks, never written anywhere else."""
    return (
        "#!/bin/sh\n"
        "# Dockyard: the repository token, from its 0600 file, for git only\n"
        '[ "$1" = get ] || exit 0\n'
        f"printf 'username=x-access-token\\npassword=%s\\n' \"$(cat {shlex.quote(secret_path)})\"\n"
    )


def origin_prefix(url: str) -> str:
    """The scheme://host[:port]/ a credential is scoped to, so git never sends it to
    another host (a push to a URL a user gave, say)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/"


def clone_script(
    *,
    url: str,
    shown_url: str,
    ref: str,
    depth: int,
    branch: str,
    helper_path: str | None,
    ssh_command: str | None = None,
    known_hosts: tuple[str, str] | None = None,
) -> str:
    """The setup's first part: clone `url` into the working directory, check out `ref`
    (empty: the remote's default branch), create the task's branch and mark the base
    commit. `helper_path`: the credential helper to use, if there is a token.
    `ssh_command`: git's ssh for the repository (core.sshCommand: it names the key's file,
    and stays for later fetches and pushes); `known_hosts`: (path, text) written before.
    Values must have been checked (gitwork.urls, gitwork.ssh)."""
    q = shlex.quote
    fetch_depth = f"--depth {int(depth)} " if depth > 0 else ""
    helper_config = (
        f"git config credential.{q(origin_prefix(url))}.helper {q(helper_path)} || exit 1\n  "
        if helper_path
        else ""
    )
    if ssh_command:
        helper_config += (
            "command -v ssh >/dev/null || dockyard_repo_failed 'this image has no ssh client: "
            "install openssh-client in the template image, or clone over https://'\n  "
            f"git config core.sshCommand {q(ssh_command)} || exit 1\n  "
        )
    if known_hosts is not None:
        path, text = known_hosts
        folder = path.rsplit("/", 1)[0]
        # kept across restarts, so a host key first seen (accept-new) stays the one trusted
        helper_config = (
            f"mkdir -p -m 0700 {q(folder)} && printf %s {q(text)} > {q(path)} || exit 1\n  "
            + helper_config
        )
    target = q(ref or "HEAD")
    what = q(f"{FAILED_LINE}cloning {shown_url} ({ref or 'default branch'}) failed")
    fetch = f"git -c core.hooksPath=/dev/null fetch -q --no-tags {fetch_depth}-- origin {target}"
    return f"""# Dockyard: clone the task's repository (the `repo` parameter)
dockyard_repo_failed() {{
  # ssh ends its lines with CR LF; git's closing advice says nothing about this failure
  printf '%s: %s\\n' {what} "$(printf %s "$1" | tr -d '\\r' | grep -v -e '^$' \\
    -e '^Please make sure you have' -e '^and the repository exists' | tail -n 3 | tr '\\n' ' ')"
  exit 1
}}
(
  export GIT_TERMINAL_PROMPT=0
  echo {q("dockyard-repo: cloning " + shown_url)}
  out=$(git init -q . 2>&1) || dockyard_repo_failed "$out"
  git remote add origin {q(url)} || exit 1
  {helper_config}out=$({fetch} 2>&1) || dockyard_repo_failed "$out"
  out=$(git checkout -q -b {q(branch)} FETCH_HEAD 2>&1) || dockyard_repo_failed "$out"
  git update-ref {BASE_REF} HEAD || exit 1
  echo "{BASE_LINE}$(git rev-parse HEAD)"
) || exit $?
"""
