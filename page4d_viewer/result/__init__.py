"""Stage 4, the result: the Reconstruction file (`reconstruction`), the one reading of the
dynamic mask (`mask`), the one per-frame point filter (`points`), and the exporters (`export`).

Torch-free: the viewer, the exporters and the evaluation read results without the model.
"""
