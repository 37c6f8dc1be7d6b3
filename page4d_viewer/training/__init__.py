"""Training the shipped default model on synthetic scenes (`train`, `losses`)."""
