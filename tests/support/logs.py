"""The process's loggers, for tests that run code which configures logging."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["every_logger", "loggers_on_a_closed_stream", "loggers_restored"]


def every_logger() -> list[logging.Logger]:
    """The root logger and every logger created so far."""
    created = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(x for x in created if isinstance(x, logging.Logger))]


def loggers_on_a_closed_stream() -> list[str]:
    """The names of the loggers with a handler writing to a closed stream."""
    return [
        logger.name
        for logger in every_logger()
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False)
    ]


@contextlib.contextmanager
def loggers_restored() -> Iterator[None]:
    """Put back every logger's handlers, level, propagation and disabled flag as they were,
    and leave a logger created meanwhile as a new logger is (no handler, level unset).

    A command run in-process (``serve``: ``events.configure_logging``) points the ``tokenward``
    and uvicorn loggers at ``sys.stderr``, under capsys a stream pytest closes after the test:
    every later record (an in-process server's audit batch) would be lost with "Logging error
    ... I/O operation on closed file"."""
    fresh: tuple[list[logging.Handler], int, bool, bool] = ([], logging.NOTSET, True, False)
    saved = {x.name: (x.handlers[:], x.level, x.propagate, x.disabled) for x in every_logger()}
    try:
        yield
    finally:
        for logger in every_logger():
            handlers, level, propagate, disabled = saved.get(logger.name, fresh)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled
