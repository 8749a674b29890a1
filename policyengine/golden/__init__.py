"""Golden tests before traffic moves: a labelled dataset from S3 replayed against the candidate and
the baseline, judged per slice (analysis/golden.py) and for prediction drift (analysis/drift.py)."""
