"""Stage 1, frames in: clips from videos, images and zips (`clip`), synthetic scenes with exact
ground truth (`synthetic`), and ground-truth readers for benchmark layouts (`groundtruth`).

Nothing here imports torch: a clip is uint8 numpy frames until `model.preprocess` converts it.
"""
