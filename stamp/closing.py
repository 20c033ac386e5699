"""One mixin for objects that hold a port, a socket, a thread or a process."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """`with obj:` closes it on every exit path; subclasses define an idempotent `close()`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
