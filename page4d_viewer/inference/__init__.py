"""Stage 3, running the model: device and precision choice, numpy frames -> the network's input
(`preprocess`), clip + checkpoint -> Reconstruction for both mask variants (`predictor`), point
tracks (`tracking`), and the job runner the app calls (`jobs`).
"""
