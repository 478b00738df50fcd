"""OOD sampling: per-sample tailness scores (tailness.py) and COLT's online selection (colt.py)."""
