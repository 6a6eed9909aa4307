"""Training: stage 1 (the restorer and the fixed-depth baseline), stage 2 (the stopping policy)."""
