#!/usr/bin/env python3
"""Differential test: `bgem3 tokenize --jsonl` against Hugging Face `tokenizers` on random,
adversarial texts (fixed seed), for each tokenizer.json given.

Usage: tokenizer_differential.py BGEM3_BINARY TOKENIZER_JSON [TOKENIZER_JSON ...] [--cases N] [--seed S]
Prints one summary line per tokenizer and a closing "N passed, N failed" line; exits 1 on any mismatch.
"""
import argparse, json, random, subprocess, sys
from tokenizers import Tokenizer

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u2003\u200a\u2028\u2029\u202f\u205f\u3000\u0085",
    ".,;:!?'\"()[]{}<>/\\|@#$%^&*-_=+~`",
    "\u0300\u0301\u0302\u0308\u0327\u034f\u0489\u20dd\u0903\u093f\u094d\u0e31\u0e48",  # combining marks
    "éèçàüößñåøæœĳǆﬁﬂﬀﬃ",
    "ＡＢＣａｂｃ０１２！？（）＜＞ｓ／　",  # full width
    "①②③⑴⒜㎏㍻™℃½¼ⅷⅫ",
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f\u180e",  # zero width and format
    "\x00\x01\x02\x07\x1b\x1f\x7f\x80\x9f",  # controls
    "你好世界中文字符测试",
    "こんにちはカタカナひらがな",
    "한국어테스트안녕",
    "Привет мир ёЁ",
    "مرحبا بالعالم",
    "नमस्ते दुनिया क्षत्रिय",
    "สวัสดีชาวโลก",
    "🙂👍🏽🇫🇷👨‍👩‍👧🏳️‍🌈✌️❤️",
    "İıŞşĞğ",
]
SPECIAL = ["<s>", "</s>", "<pad>", "<unk>", "<mask>", " <mask>", "<mask> ", "＜ｓ＞", "<s", "s>"]


def random_text(rng):
    kind = rng.random()
    if kind < 0.08:
        # Random code points from every plane, without surrogates.
        out = []
        for _ in range(rng.randint(1, 20)):
            while True:
                cp = rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x2FFF), rng.randint(0x3000, 0xFFFF), rng.randint(0x10000, 0x10FFFF)])
                if not 0xD800 <= cp <= 0xDFFF:
                    break
            out.append(chr(cp))
        return "".join(out)
    parts = []
    for _ in range(rng.randint(0, 12)):
        r = rng.random()
        if r < 0.1:
            parts.append(rng.choice(SPECIAL))
        else:
            pool = rng.choice(POOLS)
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
        if rng.random() < 0.4:
            parts.append(" " * rng.randint(1, 3))
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("tokenizers", nargs="+")
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--nfkc-variant", action="store_true",
                    help="also test a copy of the last tokenizer whose normalizer is replaced by NFKC "
                         "(ids must match; offsets are counted, see NFKCNormalizer.swift)")
    args = ap.parse_args()
    if args.nfkc_variant:
        import tempfile
        doc = json.load(open(args.tokenizers[-1], encoding="utf-8"))
        doc["normalizer"] = {"type": "NFKC"}
        variant = tempfile.NamedTemporaryFile("w", suffix="-nfkc.json", delete=False, encoding="utf-8")
        json.dump(doc, variant, ensure_ascii=False)
        variant.close()
        args.tokenizers.append(variant.name)
    ids_only = {args.tokenizers[-1]} if args.nfkc_variant else set()
    total_failed = total_passed = 0
    for path in args.tokenizers:
        rng = random.Random(args.seed)
        reference = Tokenizer.from_file(path)
        cases = []
        for i in range(args.cases):
            text = random_text(rng)
            max_length = rng.choice([None, None, None, 2, 3, 5, 16])
            cases.append((text, max_length))
        lines = "".join(json.dumps({"text": t, "max_length": m}) + "\n" for t, m in cases)
        run = subprocess.run([args.binary, "tokenize", "--tokenizer", path, "--jsonl"], input=lines.encode(), capture_output=True)
        if run.returncode != 0:
            print(f"{path}: bgem3 failed: {run.stderr.decode()}")
            total_failed += len(cases)
            continue
        got = run.stdout.decode().splitlines()
        failed = 0
        offsets_differ = 0
        for (text, max_length), line in zip(cases, got):
            reference.no_truncation()
            if max_length:
                reference.enable_truncation(max_length)
            enc = reference.encode(text)
            mine = json.loads(line)
            want = {"ids": enc.ids, "offsets": [list(o) for o in enc.offsets]}
            if path in ids_only and mine["ids"] == want["ids"]:
                offsets_differ += mine != want
                continue
            if mine != want:
                failed += 1
                if failed <= 5:
                    print(f"MISMATCH {path}\n  text={text!r} max_length={max_length}\n  want={want}\n  got ={mine}")
        if len(got) != len(cases):
            print(f"{path}: {len(got)} output lines for {len(cases)} inputs")
            failed += abs(len(cases) - len(got))
        print(f"{path}: {len(cases) - failed} of {len(cases)} random texts identical to tokenizers {__import__('tokenizers').__version__}"
              + (f" in ids ({offsets_differ} with other offsets)" if path in ids_only else ""))
        total_failed += failed
        total_passed += len(cases) - failed
    print(f"differential: {total_passed} passed, {total_failed} failed")
    sys.exit(1 if total_failed else 0)


if __name__ == "__main__":
    main()
