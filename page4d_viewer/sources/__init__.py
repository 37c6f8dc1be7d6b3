"""Stage 1, frames in: clips from videos, images and zips (`clip`), which frames they keep
(`sampling.FrameSampling`), synthetic scenes with exact ground truth (`synthetic`), and
ground-truth readers for benchmark layouts (`groundtruth`, one module per format).

Nothing here imports torch: a clip is uint8 numpy frames until `inference.preprocess` converts it.
"""
