"""Metrics on arrays (`trajectory`, `depth`, `masks`; gathered in `metrics`), a result against
ground truth (`report`), point tracks against theirs (`tracks`), the head-vs-geometry
disagreement (`disagreement`), and a batch's run index and report (`index`, `batch_report`).
Torch-free; what runs the network to score it lives in `orchestration`."""
