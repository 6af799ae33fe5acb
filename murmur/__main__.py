"""`python -m murmur` is the `murmur` command (the service starts crawls this way)."""

import sys

from murmur.cli import main

sys.exit(main())
