"""Sub-commands of the depictqa CLI (see depictqa/cli.py)."""
