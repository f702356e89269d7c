"""`python -m analysis.audit`: runs the command line of this package."""

import sys

from analysis.audit import main

sys.exit(main())
