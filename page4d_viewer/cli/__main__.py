"""`python -m page4d_viewer.cli ...` is `page4d-viewer ...`."""

import sys

from page4d_viewer.cli import main

sys.exit(main())
