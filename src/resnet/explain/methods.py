"""The class-activation-map methods, named as the CLI and the server take them (free of PyTorch)."""

METHODS = ("gradcam", "gradcam++", "scorecam")
