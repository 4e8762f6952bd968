"""Dockyard's exceptions: one root, each message says what happened and what to do.

DockyardError
├── TemplateError (ValueError)          a template or preset is malformed or unknown
│   ├── TemplateNotFound (LookupError)
│   ├── PresetNotFound (LookupError)
│   └── ParameterError                  missing / unknown / wrongly typed parameter
│       └── MissingParameter            a required parameter nobody gave
│       └── PayloadTooLarge             a prompt (or other input) is over its size limit
├── TaskNotFound (LookupError)
├── Unauthenticated (PermissionError)   no credential, or one that is unknown/expired/revoked
├── Forbidden (PermissionError)         a valid caller whose role does not allow the act
├── TaskConflict                        a name is taken, or the task is in the wrong status
│   └── IllegalTransition               the state machine rejected a move
├── BackendError (RuntimeError)         the workspace backend failed
│   ├── BackendUnavailable              the Docker daemon cannot be reached
│   └── ImageBuildError                 building a workspace image failed
├── BridgeFailure                       the bridge inside a workspace misbehaved
└── StartupFailure                      a startup phase failed or ran out of time
    └── PhaseTimeout (TimeoutError)
"""

from __future__ import annotations


class DockyardError(Exception):
    """Root of every error Dockyard raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class TemplateError(DockyardError, ValueError):
    """A template or preset file is malformed."""


class TemplateNotFound(TemplateError, LookupError):
    """No template of that name is on the search path."""


class PresetNotFound(TemplateError, LookupError):
    """The template has no preset of that name."""


class ParameterError(TemplateError):
    """A parameter is missing, unknown or of the wrong type."""


class PayloadTooLarge(ParameterError):
    """A prompt (or other input) is larger than Dockyard takes; the message says the limit."""


class MissingParameter(ParameterError):
    """A required parameter is set neither by the preset nor by the task."""

    def __init__(self, message: str, *, name: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.name = name


class TaskNotFound(DockyardError, LookupError):
    """No task with that id or name."""


class Unauthenticated(DockyardError, PermissionError):
    """The request carries no valid credential (HTTP 401)."""


class Forbidden(DockyardError, PermissionError):
    """The caller is known, but their role does not allow this (HTTP 403)."""


class TaskConflict(DockyardError):
    """The task's name is taken, or it is not in a status that allows the action."""


class IllegalTransition(TaskConflict):
    """The lifecycle state machine rejected a status change."""


class TooManySessions(DockyardError):
    """One more interactive session would pass a configured bound (429)."""


class BackendError(DockyardError, RuntimeError):
    """The workspace backend failed."""


class BackendUnavailable(BackendError):
    """The backend (the Docker daemon) cannot be reached."""


class ImageBuildError(BackendError):
    """Building a workspace image failed."""


class BridgeFailure(DockyardError):
    """The bridge inside a workspace misbehaved or cannot be reached."""


class StartupFailure(DockyardError):
    """A startup phase failed (a setup script's exit code, an agent that never started)."""

    def __init__(self, message: str, *, phase: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.phase = phase


class PhaseTimeout(StartupFailure, TimeoutError):
    """A startup phase ran past its time limit."""
