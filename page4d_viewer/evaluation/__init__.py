"""Metrics on arrays (`metrics`), a result against ground truth, and the default model's table
(`default_model`)."""
