"""depictqa."""
