"""Start the PAGE-4D viewer: Gradio panel on :7860 with the Viser scene on :8080 embedded.

Same as `page4d-viewer app ...`; see `python launch.py --help`.
"""

import sys

from page4d_viewer.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
