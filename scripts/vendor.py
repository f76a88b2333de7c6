#!/usr/bin/env python3
"""Vendor the pinned upstream release files: download by URL (or copy from a mirror), verify sha256.

    python scripts/vendor.py                         # download (online)
    python scripts/vendor.py --mirror ../shared/upstream   # offline, from a mirror folder

The files land in src/hybrid_knative/_vendor/ (git-ignored); wheels and the snap include them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybrid_knative.catalog import load_catalog
from hybrid_knative.errors import HybridError
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, vendor_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, help="copy from this folder instead of downloading")
    parser.add_argument("--dest", type=Path, default=PACKAGE_VENDOR_DIR, help="target folder")
    args = parser.parse_args(argv)
    if args.mirror is not None and not args.mirror.is_dir():
        print(f"vendor: mirror folder not found: {args.mirror}", file=sys.stderr)
        return 2
    files = load_catalog().all_files()
    try:
        vendor_files(files, args.dest, mirror=args.mirror)
    except HybridError as exc:
        print(f"vendor: {exc}", file=sys.stderr)
        return 1
    print(f"vendor: {len(files)} files verified in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
