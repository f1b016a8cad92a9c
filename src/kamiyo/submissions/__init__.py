"""Community submissions: reports of missing incidents and corrections, held for review."""
