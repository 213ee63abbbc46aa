"""User-facing errors.

Every failure a user can cause is a :class:`SearchqError`. Its message is ONE line that names the
bad value, what is allowed and how to fix it; the CLI prints it and exits with status 2.
``assert`` is kept for internal invariants only.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "HardwareConstraintError",
    "InfeasibleBudgetError",
    "NotSupportedError",
    "SearchqError",
    "TaskError",
    "UnsupportedModelError",
]


class SearchqError(Exception):
    """Base class of every error searchq reports to a user."""


class ConfigError(SearchqError, ValueError):
    """A configuration value is wrong.

    ``file``, ``line``, ``column`` and ``key`` locate the value in the ORIGINAL text of a config
    file (comments included); any of them may be unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.key = key
        self.file = file
        self.line = line
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def located(
        self, *, file: str | None = None, line: int | None = None, column: int | None = None
    ) -> ConfigError:
        """Return a copy carrying a location (keeps what is already known)."""
        return ConfigError(
            self.message,
            key=self.key,
            file=self.file if self.file is not None else file,
            line=self.line if self.line is not None else line,
            column=self.column if self.column is not None else column,
        )


class NotSupportedError(ConfigError):
    """A config asks for an NNCF algorithm or option searchq does not implement."""


class InfeasibleBudgetError(SearchqError, ValueError):
    """A budget (ratio, size, latency) cannot be met with the allowed bits / subnets."""


class HardwareConstraintError(SearchqError, ValueError):
    """Bits or modes that the target hardware preset forbids."""


class UnsupportedModelError(SearchqError):
    """The model has nothing searchq can work on (e.g. no quantizable layer)."""


class TaskError(SearchqError):
    """A task (built-in name or ``package.module:function``) cannot be loaded."""


class CheckpointError(SearchqError):
    """A checkpoint or saved result is missing, corrupt or of another schema version."""
