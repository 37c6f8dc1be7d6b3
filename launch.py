"""Start the PAGE-4D viewer on one port, 127.0.0.1:7860: the Gradio panel, and each browser
tab's Viser scene embedded from /scene/<session>/ on that same port.

Same as `page4d-viewer app ...`; see `python launch.py --help`.
"""

import sys

from page4d_viewer.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
