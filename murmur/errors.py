"""murmur's one error root. Every error a user can act on is a `MurmurError`; the CLI turns it into one
line (`murmur: error: ...`) in one place, with the exit code the class names. Kept free of heavy imports:
every command imports it."""

from __future__ import annotations

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2  # the exit codes of every murmur command


class MurmurError(Exception):
    """Something the user (or their config, data or server) must fix; the message says what to do."""

    exit_code = EXIT_ERROR  # usage-like errors say EXIT_USAGE


class UserError(MurmurError):
    """A command line that cannot be run as given; printed as one line, no traceback."""

    exit_code = EXIT_USAGE
