"""Limits shared by every layer, free of PyTorch so the command line can read them at once."""

MAX_SIDE = 4096  # largest resize / crop / input side accepted (from flags or checkpoint metadata)
