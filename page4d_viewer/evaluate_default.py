"""`python -m page4d_viewer.evaluate_default ...` is `page4d-viewer evaluate-default ...`.

Kept because the default model's docs and issues quote this command.
"""

import sys

from page4d_viewer.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate-default", *sys.argv[1:]]))
