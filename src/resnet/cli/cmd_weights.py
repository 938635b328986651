"""``resnet weights list | download | verify | path | import``: named pretrained weights and their cache."""

from __future__ import annotations

import argparse

from .common import console, examples, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights", help="named pretrained weights (torchvision, timm, akamaster): list, download, verify, import",
        description="Named pretrained weights, taken at run time from torchvision's and timm's metadata plus the "
        "akamaster CIFAR-10 checkpoints. NAME[:TAG] is e.g. resnet50 (the recommended weights), resnet50:tv_in1k_v2, "
        "resnet50:timm:a1_in1k, resnet56:akamaster_cifar10. Files are cached in $RESNET_HOME/weights (default "
        "~/.cache/resnet); HF_HUB_OFFLINE=1 keeps everything off the network.",
        epilog=examples("resnet weights list resnet50", "resnet weights download resnet56:akamaster_cifar10"),
    )
    wsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = wsub.add_parser("list", help="a table of every named weight: source, accuracy, preprocessing, size, cached",
                          description="Every named weight that fits a network of this library: name, tag, source, published top-1/top-5, input size and preprocessing, file size, licence, and whether it is cached.",
                          epilog=examples("resnet weights list resnet50", "resnet weights list '*akamaster*' --cached"))
    lst.add_argument("pattern", nargs="?", help="shell-style filter on NAME:TAG, e.g. 'resnet50' or '*akamaster*'")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--cached", action="store_true", help="only weights already on this machine")
    dl = wsub.add_parser("download", help="fetch NAME[:TAG] into the cache (resumes; checks the sha256)",
                          description="Fetch named weights into the cache: a partial file is resumed, the sha256 is checked before the file is kept, and a mismatch deletes it.",
                          epilog=examples("resnet weights download resnet50:tv_in1k_v2", "resnet weights download resnet20 resnet56 --timeout 60"))
    dl.add_argument("names", nargs="+", metavar="NAME[:TAG]", help="weights to fetch (a bare NAME: the recommended ones)")
    dl.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a try is given up (default 30)")
    dl.add_argument("--retries", type=int, default=3, help="further tries after a failed one (default 3)")
    ver = wsub.add_parser("verify", help="re-check the sha256 of every cached file (or of NAME[:TAG])",
                          description="Re-check the sha256 of cached weights against the published prefix; exit 1 when one differs.",
                          epilog=examples("resnet weights verify", "resnet weights verify resnet56:akamaster_cifar10"))
    ver.add_argument("names", nargs="*", metavar="NAME[:TAG]", help="weights to check (default: every cached file)")
    pth = wsub.add_parser("path", help="print the local file of NAME[:TAG] (error when not downloaded)",
                          description="Print the cached file of named weights (an error, naming the download and import commands, when it is not cached).",
                          epilog=examples("resnet weights path resnet56:akamaster_cifar10"))
    pth.add_argument("name", metavar="NAME[:TAG]", help="the weights whose file to print")
    imp = wsub.add_parser("import", help="copy a weights file fetched elsewhere into the cache (machines without network)",
                          description="Copy a weights file fetched on another machine into the cache as NAME:TAG, checking its sha256 first.",
                          epilog=examples("resnet weights import resnet50-11ad3fa6.pth --as resnet50:tv_in1k_v2"))
    imp.add_argument("file", help="the downloaded file, e.g. resnet50-11ad3fa6.pth")
    imp.add_argument("--as", dest="as_name", required=True, metavar="NAME:TAG", help="which named weights it is")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "download": _download, "verify": _verify, "path": _path, "import": _import}[args.action](args)


def _entry(text: str):  # noqa: ANN202 - WeightEntry
    from ..errors import UsageError
    from ..weights import find, split_name

    model, tag = split_name(text)
    try:
        return find(model, tag)
    except ValueError as err:  # unknown network name
        raise UsageError(str(err)) from None


def entry_row(e) -> dict[str, object]:  # noqa: ANN001 - WeightEntry
    from ..weights import locate

    pre = e.preprocess
    local = locate(e)
    size_mb = e.file_size_mb or (round(local.stat().st_size / 1e6, 3) if local is not None else None)
    if pre.resize:
        preprocessing = f"{pre.resize}->{pre.crop_size} {pre.interpolation}"
    else:
        preprocessing = f"as is ({pre.input_size}px)"
    return {"name": e.name, "model": e.model, "tag": e.tag, "source": e.publisher, "default": e.default, "dataset": e.dataset,
            "classes": e.num_classes, "top1": e.top1, "top5": e.top5, "input": pre.crop_size, "test_input": e.test_input_size,
            "preprocessing": preprocessing, "mean": list(pre.mean), "std": list(pre.std), "size_mb": size_mb,
            "license": e.license, "url": e.url, "sha256_prefix": e.sha256_prefix, "cached": local is not None}


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..weights import all_entries

    rows = [entry_row(e) for e in all_entries(args.pattern)]
    if args.cached:
        rows = [r for r in rows if r["cached"]]
    if args.json:
        print_json(rows)
        return 0
    table = Table(title=f"{len(rows)} named weights" + (f" matching {args.pattern!r}" if args.pattern else "")
                  + " (* = recommended: pretrained=True)")
    for col in ("name", "source", "data", "top-1", "top-5", "input", "preprocessing", "size", "licence", "cached"):
        table.add_column(col, justify="right" if col in ("top-1", "top-5", "input", "size") else "left")
    for r in rows:
        size = f"{r['input']}" + (f" (test {r['test_input']})" if r["test_input"] else "")
        table.add_row(f"{r['name']}{' *' if r['default'] else ''}", str(r["source"]), f"{r['dataset']} ({r['classes'] or 'no head'})",
                      _pct(r["top1"]), _pct(r["top5"]), size, str(r["preprocessing"]),
                      f"{r['size_mb']:.1f} MB" if r["size_mb"] else "-", str(r["license"] or "-"), "yes" if r["cached"] else "")
    console().print(table)
    if not rows:
        print("no named weights match; `resnet weights list` shows all")
        return 1
    return 0


def _pct(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def _download(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..weights import DownloadPolicy, ensure

    if args.timeout <= 0 or args.retries < 0:
        raise UsageError("--timeout must be positive and --retries >= 0")
    policy = DownloadPolicy(timeout=args.timeout, retries=args.retries)
    for name in args.names:
        entry = _entry(name)
        print(f"{entry.name}: {ensure(entry, policy)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..weights import all_entries, verify_cached

    entries = [_entry(n) for n in args.names] if args.names else all_entries()
    results = verify_cached(entries)
    for entry, path, status in results:
        print(f"{status:<18} {entry.name}  {path}")
    if args.names and len(results) < len(entries):
        missing = sorted({e.name for e in entries} - {e.name for e, _, _ in results})
        print(f"not downloaded: {', '.join(missing)}")
        return 1
    if not results:
        print("no weights are cached yet; `resnet weights download NAME[:TAG]` fetches some")
    bad = [e.name for e, _, s in results if s == "mismatch"]
    if bad:
        print(f"{len(bad)} file(s) do not match their published sha256: delete them and download again")
        return 1
    return 0


def _path(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..weights import cache_path, locate

    entry = _entry(args.name)
    found = locate(entry)
    if found is None:
        raise UsageError(f"{entry.name} is not downloaded (it would be {cache_path(entry)}); run `resnet weights "
                         f"download {entry.name}`, or `resnet weights import FILE --as {entry.name}`")
    print(found)
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..weights import import_file

    entry = _entry(args.as_name)
    dest = import_file(args.file, entry)
    print(f"{entry.name}: imported {args.file} -> {dest}")
    return 0
