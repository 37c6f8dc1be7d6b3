"""Metrics on arrays (`trajectory`, `depth`, `masks`; gathered in `metrics`), a result against
ground truth (`report`), and the default model's table (`default_model`)."""
