"""Allow ``python -m secquant``."""

import sys

from secquant.cli import main

sys.exit(main())
