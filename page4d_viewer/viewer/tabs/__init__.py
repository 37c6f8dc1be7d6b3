"""The panel's tabs, one module each; `panel.py` builds them from one list."""
