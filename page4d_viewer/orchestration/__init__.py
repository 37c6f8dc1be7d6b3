"""Work that spans stages, above inference, evaluation and training: a checkpoint over a whole
dataset (`batch`, torchrun shards writing one result and one index row per clip) and the
default model's table (`default_model`: renders held-out synthetic clips, runs the network,
scores it). Nothing below imports this package; only the command line does.
"""
