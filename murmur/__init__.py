"""murmur: a social-listening monitor (crawl -> score -> aggregate -> report)."""

__version__ = "0.1.0"
