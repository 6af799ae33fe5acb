"""The sentiment package's error, in a module of its own: the CLI catches it on every command, and
importing it must not load torch and transformers (seconds per `murmur crawl` child process)."""

from murmur.errors import MurmurError


class ModelError(MurmurError):
    """A model cannot be loaded or used; the message says what to do."""
