"""Names and limits of evaluation options, free of PyTorch so the command line can list them at once."""

PROTOCOLS = ("center", "flip", "shift", "10crop", "multiscale")
MAX_SIDE = 4096  # largest resize / crop / input side accepted (from flags or checkpoint metadata)
IMPORT_SOURCES = ("auto", "resnet", "torchvision", "timm", "akamaster")  # where a checkpoint comes from
OPTIMIZE_MODES = ("none", "fp32", "bf16", "int8")
