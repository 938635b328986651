"""Peak RSS and time of decoding one large JPEG (e.g. 12000x12000) at reduced scale for resizes 32 and 256, and in full.

    PYTHONPATH=src python benchmarks/decode_large_jpeg.py big.jpg
"""
import resource, sys, time
from resnet.data.decode import read_image_checked
data = open(sys.argv[1], 'rb').read()
for side in (32, 256, None):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    d = read_image_checked(data, 3, min_side=side)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"min_side {side}: decoded {d.pixels.shape}, {dt:.2f} s, peak RSS +{(after-before)//1024} MB (process peak {after//1024} MB)")
    del d
