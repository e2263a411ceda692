"""End-to-end tests: `python -m devstack` as a subprocess, over HTTP."""
