"""Stage 3, running the model: device and precision choice, clip + checkpoint ->
Reconstruction for both mask variants (`predictor`), and the job runner the app calls (`jobs`).
"""
