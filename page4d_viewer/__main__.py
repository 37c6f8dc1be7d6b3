"""`python -m page4d_viewer ...` is `page4d-viewer ...` (and what `torchrun -m` launches)."""

import sys

from page4d_viewer.cli import main

sys.exit(main())
