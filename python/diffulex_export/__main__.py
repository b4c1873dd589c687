"""`python -m diffulex_export ...` runs the `diffulex-export` command line."""

import sys

from .cli import main

sys.exit(main())
