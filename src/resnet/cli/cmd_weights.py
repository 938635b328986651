"""``resnet weights list | download | verify | path | import | publish``: named pretrained weights, their cache, and
Hugging Face Hub folders."""

from __future__ import annotations

import argparse

from .common import console, examples, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights", help="named pretrained weights (torchvision, timm, akamaster): list, download, verify, import; publish a run to the Hub",
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
                          description="Re-check the sha256 of cached weights: in full where the Hugging Face hub publishes it or where it was "
                          "recorded at the first download or import (torchvision and akamaster publish only an 8-digit "
                          "prefix); exit 1, one line per file, when one differs.",
                          epilog=examples("resnet weights verify", "resnet weights verify resnet56:akamaster_cifar10"))
    ver.add_argument("names", nargs="*", metavar="NAME[:TAG]", help="weights to check (default: every cached file)")
    pth = wsub.add_parser("path", help="print the local file of NAME[:TAG] (error when not downloaded)",
                          description="Print the cached file of named weights, after checking its sha256 (an error, naming the download and "
                          "import commands, when it is not cached; an error when it is corrupt or was replaced).",
                          epilog=examples("resnet weights path resnet56:akamaster_cifar10"))
    pth.add_argument("name", metavar="NAME[:TAG]", help="the weights whose file to print")
    imp = wsub.add_parser("import", help="copy a weights file fetched elsewhere into the cache (machines without network)",
                          description="Copy a weights file fetched on another machine into the cache as NAME:TAG, checking its sha256 first.",
                          epilog=examples("resnet weights import resnet50-11ad3fa6.pth --as resnet50:tv_in1k_v2"))
    imp.add_argument("file", help="the downloaded file, e.g. resnet50-11ad3fa6.pth")
    imp.add_argument("--as", dest="as_name", required=True, metavar="NAME:TAG", help="which named weights it is")
    _add_publish(wsub)
    p.set_defaults(func=run)


def _add_publish(wsub: argparse._SubParsersAction) -> None:
    pub = wsub.add_parser(
        "publish", help="write a run as a Hugging Face Hub folder (config.json, model.safetensors, model card); --push uploads it",
        description="Write RUN (a run folder or one of our checkpoints) into DIR as a Hugging Face Hub folder: config.json "
        "(the network's spec, classes and preprocessing), model.safetensors and a README.md model card with the run's "
        "results, data and licence. No network is needed; --push then uploads DIR to --repo with huggingface_hub (a "
        "token from `hf auth login` or HF_TOKEN). Load it back with resnet predict hf-hub:OWNER/NAME PHOTO or "
        "resnet.create_model(\"hf-hub:OWNER/NAME\", pretrained=True); HF_HUB_OFFLINE=1 reads the local cache only.",
        epilog=examples("resnet weights publish runs/r20 hub/r20 --repo me/resnet20-cifar10 --license apache-2.0",
                        "resnet weights publish runs/r20 hub/r20 --repo me/resnet20-cifar10 --push"))
    pub.add_argument("run", metavar="RUN", help="run folder or checkpoint file (ours)")
    pub.add_argument("out", metavar="DIR", help="folder to write (created; other files in it are left alone)")
    pub.add_argument("--repo", metavar="OWNER/NAME", default=None, help="the Hub repository it is for (named in the card; needed by --push)")
    pub.add_argument("--license", default="other", help="licence field of the model card, a Hub licence id such as apache-2.0 (default: other)")
    pub.add_argument("--push", action="store_true", help="upload DIR to --repo after writing it (needs a token and the network)")
    pub.add_argument("--private", action="store_true", help="with --push: create the repository private")
    pub.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    actions = {"list": _list, "download": _download, "verify": _verify, "path": _path, "import": _import, "publish": _publish}
    return actions[args.action](args)


def _publish(args: argparse.Namespace) -> int:
    from ..deploy.publish import publish, push
    from ..errors import UsageError

    if args.push and not args.repo:
        raise UsageError("--push needs --repo OWNER/NAME (the Hub repository to upload to)")
    folder = publish(args.run, args.out, repo=args.repo, license=args.license)
    url = push(folder, args.repo, private=args.private) if args.push else None
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if args.json:
        print_json({"folder": str(folder), "files": files, "repo": args.repo, "pushed": url})
        return 0
    print(f"wrote {folder} ({', '.join(files)})")
    if url:
        print(f"pushed to {url}; load it with resnet predict hf-hub:{args.repo} PHOTO")
    else:
        push_hint = f"resnet weights publish {args.run} {args.out} --repo {args.repo or 'OWNER/NAME'} --push"
        print(f"upload it with: {push_hint}")
    return 0


def _entry(text: str):  # noqa: ANN202 - WeightEntry
    from ..errors import UsageError
    from ..weights import find, split_name

    model, tag = split_name(text)
    try:
        return find(model, tag)
    except ValueError as err:  # unknown network name
        raise UsageError(str(err)) from None


# What `weights list` says each verification is (resnet.weights.store.verification).
VERIFIED = {"published": "sha256 (hub)", "recorded": "sha256 (recorded)", "hub": "sha256 (hub, at download)",
            "prefix": "prefix only", "none": "-"}


def entry_row(e) -> dict[str, object]:  # noqa: ANN001 - WeightEntry
    from ..weights import locate, verification

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
            "license": e.license, "url": e.url, "sha256_prefix": e.sha256_prefix, "cached": local is not None,
            "verified": verification(e)}


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
    for col in ("name", "source", "data", "top-1", "top-5", "input", "preprocessing", "size", "licence", "cached",
                "verified"):
        table.add_column(col, justify="right" if col in ("top-1", "top-5", "input", "size") else "left")
    for r in rows:
        size = f"{r['input']}" + (f" (test {r['test_input']})" if r["test_input"] else "")
        table.add_row(f"{r['name']}{' *' if r['default'] else ''}", str(r["source"]), f"{r['dataset']} ({r['classes'] or 'no head'})",
                      _pct(r["top1"]), _pct(r["top5"]), size, str(r["preprocessing"]),
                      f"{r['size_mb']:.1f} MB" if r["size_mb"] else "-", str(r["license"] or "-"), "yes" if r["cached"] else "",
                      VERIFIED[str(r["verified"])])
    console().print(table)
    if rows:
        print("verified: sha256 (hub) = the full sha256 the Hugging Face hub publishes; sha256 (recorded) = the full "
              "sha256 recorded at the first download or import, which matched the published 8-digit prefix; prefix only "
              "= until then")
    if not rows:
        print("no named weights match; `resnet weights list` shows all")
        return 1
    return 0


def _pct(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def _download(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..weights import DownloadPolicy, check_fetchable, split_name

    if args.timeout <= 0 or args.retries < 0:
        raise UsageError("--timeout must be positive and --retries >= 0")
    policy = DownloadPolicy(timeout=args.timeout, retries=args.retries)
    for name in args.names:  # no network and not cached: said before PyTorch and the publishers' metadata load
        check_fetchable(*split_name(name))
    from ..weights import ensure

    for name in args.names:
        entry = _entry(name)
        print(f"{entry.name}: {ensure(entry, policy)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    import sys

    from ..weights import all_entries, verify_cached

    entries = [_entry(n) for n in args.names] if args.names else all_entries()
    results = verify_cached(entries)
    bad = 0
    for entry, path, status in results:
        if status in VERIFIED:
            print(f"{'ok, ' + VERIFIED[status] if status != 'none' else 'no hash published':<26} {entry.name}  {path}")
        else:  # the one-line reason, naming the file
            print(status, file=sys.stderr)
            bad += 1
    if args.names and len(results) < len(entries):
        missing = sorted({e.name for e in entries} - {e.name for e, _, _ in results})
        print(f"not downloaded: {', '.join(missing)}", file=sys.stderr)
        return 1
    if not results:
        print("no weights are cached yet; `resnet weights download NAME[:TAG]` fetches some")
    return 1 if bad else 0


def _path(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..weights import cache_path, locate, verify

    entry = _entry(args.name)
    found = locate(entry)
    if found is None:
        raise UsageError(f"{entry.name} is not downloaded (it would be {cache_path(entry)}); run `resnet weights "
                         f"download {entry.name}`, or `resnet weights import FILE --as {entry.name}`")
    verify(entry, found)  # a corrupt or replaced file is an error, not a path to use
    print(found)
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..weights import import_file

    entry = _entry(args.as_name)
    dest = import_file(args.file, entry)
    print(f"{entry.name}: imported {args.file} -> {dest}")
    return 0
