"""SSH deploy keys and host keys for a task's repository (pure).

A deploy key is a secret (`repo_ssh_key`): it reaches the workspace only as a 0600 file
git's ssh reads (`core.sshCommand` names the file, never the key). Host keys are what keeps
a clone from talking to an impostor: a known_hosts text the template pins (`repo.
known_hosts`) or the task gives (`repo_known_hosts`), or, only where the template allows it
(`repo.ssh_accept_new`), the first key seen. Both values come from whoever creates a task,
and both are written into files a program parses line by line, so each line is checked for
its shape here: no control character, no second line smuggled into a one-line field, and
nothing but key lines in a known_hosts text.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex

from provisioner.errors import ParameterError

MAX_KEY = 16 * 1024  # an RSA 8192-bit key in PEM is about 6.5 KiB
MAX_KNOWN_HOSTS = 64 * 1024
MAX_KNOWN_HOSTS_LINES = 200
_BEGIN = re.compile(r"-----BEGIN ((?:OPENSSH|RSA|EC|DSA) )?PRIVATE KEY-----")
_B64_LINE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_OPENSSH_MAGIC = b"openssh-key-v1\0"
# a known_hosts line: [@marker] host-patterns key-type base64-key [comment]
_MARKER = re.compile(r"@(cert-authority|revoked)")
_HOST_PATTERNS = re.compile(r"(\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+|[A-Za-z0-9.*?!\[\]:,_-]+)")
_KEY_TYPE = re.compile(
    r"ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)"
    r"@openssh\.com|(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521))-cert-v01@openssh\.com"
)
_KEY_BLOB = re.compile(r"AAAA[A-Za-z0-9+/]+={0,2}")
_COMMENT = re.compile(r"[ -~]*")


def check_ssh_key(key: str, what: str = "Parameter repo_ssh_key") -> str:
    """The private key `key` as ssh reads it (LF line ends, one final newline); else
    ParameterError saying what is wrong, never showing any of the key."""
    if not isinstance(key, str) or not key.strip():
        raise ParameterError(f"{what}: give the deploy key's private key (the whole file)")
    if len(key) > MAX_KEY:
        raise ParameterError(f"{what}: longer than {MAX_KEY} characters: not one private key")
    text = key.replace("\r\n", "\n").strip("\n ")
    for c in text:
        if c != "\n" and not " " <= c <= "~":
            raise ParameterError(
                f"{what}: holds a control or non-ASCII character (U+{ord(c):04X}); give the "
                "key file's text as it is"
            )
    lines = [line.strip() for line in text.split("\n")]
    begin = _BEGIN.fullmatch(lines[0])
    if lines[0] == "-----BEGIN ENCRYPTED PRIVATE KEY-----":
        raise ParameterError(f"{what}: {_PASSPHRASE}")
    if begin is None:
        hint = (
            "that is a public key: give the private key"
            if re.match(r"(ssh-|ecdsa-|sk-)", lines[0])
            else "a private key starts with -----BEGIN ... PRIVATE KEY-----"
        )
        raise ParameterError(f"{what}: not a private key ({hint})")
    kind = begin.group(1) or ""
    if lines[-1] != f"-----END {kind}PRIVATE KEY-----":
        raise ParameterError(f"{what}: the key's last line is not its END line")
    body = lines[1:-1]
    if any(":" in line for line in body):  # PEM headers: Proc-Type: 4,ENCRYPTED and such
        raise ParameterError(f"{what}: {_PASSPHRASE}")
    if not body or not all(_B64_LINE.fullmatch(line) for line in body):
        raise ParameterError(f"{what}: the key's body is not base64 lines")
    try:
        blob = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ParameterError(f"{what}: the key's body is not base64") from exc
    if kind == "OPENSSH " and _openssh_cipher(blob) != b"none":
        raise ParameterError(f"{what}: {_PASSPHRASE}")
    return "\n".join(lines) + "\n"


_PASSPHRASE = (
    "the key has a passphrase, and git runs without anyone to type it; give a deploy key "
    "made without one (ssh-keygen -N '')"
)


def _openssh_cipher(blob: bytes) -> bytes | None:
    """The cipher an OpenSSH private key file names (`none`: no passphrase)."""
    if not blob.startswith(_OPENSSH_MAGIC):
        return None
    rest = blob[len(_OPENSSH_MAGIC) :]
    if len(rest) < 4:
        return None
    size = int.from_bytes(rest[:4], "big")
    return rest[4 : 4 + size] if size <= 64 else None


def check_known_hosts(text: str, what: str = "Parameter repo_known_hosts") -> str:
    """A known_hosts text (key lines as `ssh-keyscan HOST` prints them; blank lines and `#`
    comments allowed), normalized to LF lines; else ParameterError naming the line."""
    if not isinstance(text, str):
        raise ParameterError(f"{what}: give known_hosts lines (as ssh-keyscan prints them)")
    if len(text) > MAX_KNOWN_HOSTS:
        raise ParameterError(f"{what}: longer than {MAX_KNOWN_HOSTS} characters")
    lines = text.replace("\r\n", "\n").strip("\n").split("\n") if text.strip() else []
    if len(lines) > MAX_KNOWN_HOSTS_LINES:
        raise ParameterError(f"{what}: more than {MAX_KNOWN_HOSTS_LINES} lines")
    kept: list[str] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        bad = next((c for c in line if not " " <= c <= "~"), None)
        if bad is not None:
            raise ParameterError(
                f"{what}: line {number} holds a control or non-ASCII character (U+{ord(bad):04X})"
            )
        if not line or line.startswith("#"):
            kept.append(line)
            continue
        fields = line.split()
        if _MARKER.fullmatch(fields[0]):
            fields = fields[1:]
        if (
            len(fields) < 3
            or not _HOST_PATTERNS.fullmatch(fields[0])
            or not _KEY_TYPE.fullmatch(fields[1])
            or not _KEY_BLOB.fullmatch(fields[2])
            or not _COMMENT.fullmatch(" ".join(fields[3:]))
        ):
            raise ParameterError(
                f"{what}: line {number} is not a known_hosts line (HOSTS KEYTYPE KEY, as "
                "`ssh-keyscan -p PORT HOST` prints it)"
            )
        kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


def ssh_command(key_path: str | None, known_hosts_path: str, accept_new: bool) -> str:
    """The ssh command git runs for the repository (core.sshCommand): only the deploy key
    is offered (no agent, no ~/.ssh keys), no question is ever asked (BatchMode), and the
    host's key must be in `known_hosts_path`, or is added there the first time when
    `accept_new` (the template allows it)."""
    q = shlex.quote
    parts = ["ssh"]
    if key_path is not None:
        parts += ["-i", q(key_path), "-o", "IdentitiesOnly=yes"]
    parts += [
        "-o",
        "IdentityAgent=none",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={q(known_hosts_path)}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"StrictHostKeyChecking={'accept-new' if accept_new else 'yes'}",
    ]
    return " ".join(parts)
