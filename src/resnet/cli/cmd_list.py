"""``resnet list [PATTERN]``: registered networks with params and multiply-adds."""

from __future__ import annotations

import argparse

from .common import console, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="list registered networks with params and multiply-adds",
        description="List the registered networks with their parameters and multiply-adds per image (counted once, "
                    "then answered from a cache in $RESNET_CACHE_DIR or ~/.cache/resnet).",
        epilog="examples:\n  resnet list\n  resnet list 'resnet1*'\n  resnet list plain --json",
    )
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*' or 'plain' (substring)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--names-only", action="store_true", help="print names only")
    p.add_argument("--markdown", action="store_true", help="a markdown table (the model table of docs/guide/models.md is made with this)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..analysis.count_cache import model_rows
    from ..models.registry import matching_models

    names = matching_models(args.pattern)
    if args.names_only:
        print("\n".join(names))
        return 0
    rows = model_rows(names)
    if args.json:
        print_json(rows)
        return 0
    if args.markdown:
        print("| name | family | input | params | multiply-adds |\n|---|---|---:|---:|---:|")
        for r in rows:
            print(f"| `{r['name']}` | {r['family']} | {r['input']} | {r['params'] / 1e6:.2f}M | {_fmt_macs(int(r['macs']))} |")
        return 0
    table = Table(title=f"{len(rows)} networks" + (f" matching {args.pattern!r}" if args.pattern else ""))
    for col, just in (("name", "left"), ("family", "left"), ("input", "right"), ("params", "right"), ("multiply-adds", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(str(r["name"]), str(r["family"]), f"{r['input']}px", f"{r['params'] / 1e6:.2f}M", _fmt_macs(int(r["macs"])))
    console().print(table)
    return 0


def _fmt_macs(macs: int) -> str:
    return f"{macs / 1e9:.3f}G" if macs >= 1e9 else f"{macs / 1e6:.2f}M"
