#!/usr/bin/env python3
"""Writes Tests/Fixtures/golden/tokenizer-adversarial.json: hand-picked hard inputs tokenised by
Hugging Face `tokenizers` (pinned below) with the real XLM-R tokenizer and the tiny model's.

Usage: make_tokenizer_goldens.py XLMR_TOKENIZER_JSON TINY_TOKENIZER_JSON OUT
Needs: pip install tokenizers==0.22.1 (the version the shared goldens were made with).
"""
import json, random, sys
import tokenizers
from tokenizers import Tokenizer

CASES = {
    "empty": "",
    "one space": " ",
    "spaces": "     ",
    "tab newline": "\t\n",
    "mixed white space": " \t\u00a0\u2003\u3000\u2028 \n",
    "ideographic space": "\u3000",
    "lone combining acute": "\u0301",
    "combining marks first": "\u0301\u0301abc",
    "combining after space": "a \u0301 b",
    "stacked combining": "e\u0301\u0302\u0303\u0304\u0305\u0306",
    "decomposed": "e\u0301te\u0301 cafe\u0301",
    "nul": "\x00",
    "nul inside": "a\x00b",
    "controls": "\x01\x02\x03\x07\x08\x7f",
    "ansi escapes": "\x1b[31mred\x1b[0m",
    "c1 controls": "x\x85y\x9fz",
    "crlf": "a\r\nb\rc\nd",
    "emoji zwj family": "👨‍👩‍👧‍👦",
    "emoji flags": "🇫🇷🇩🇪🇯🇵",
    "emoji skin tone": "👍🏽 ok",
    "emoji rainbow flag": "🏳️‍🌈",
    "emoji in word": "a👨‍👩‍👧b",
    "keycap": "1️⃣#️⃣",
    "full width": "ＨＥＬＬＯ　ＷＯＲＬＤ！１２３",
    "half width katakana": "ｶﾀｶﾅ ﾃｽﾄ",
    "ligatures": "ﬁnance ﬂow ﬀ ﬃ",
    "ligature with accent": "ﬁ\u0301x",
    "circled and squared": "①②③ ⑴ ⒜ ㎏ ㍻",
    "trademark fractions": "™ ½ ¼ ⅞ Ⅻ ⅷ",
    "dz digraph": "ǆ Ǆ ǅ",
    "zero width start": "\u200bhello",
    "bom start": "\ufeffbom",
    "soft hyphen": "\u00adsoft\u00adhyphen",
    "zero width joiners": "zero\u200bwidth\u200djoin\u200cnon\u2060word",
    "special s": "<s>",
    "special inside word": "a<s>b",
    "mask": "<mask>",
    "mask in sentence": "hello <mask> world",
    "mask spaces": "hello    <mask>",
    "full width special": "＜ｓ＞",
    "double eos": "</s></s>",
    "unk literal": "<unk>",
    "pad then text": "<pad>x",
    "partial special": "<s <ma sk> </",
    "devanagari conjunct": "क्षत्रिय द्वार",
    "thai": "ที่นี่มีน้ำ",
    "hangul jamo": "\u1100\u1161\u11a8 한국",
    "arabic with marks": "مَرْحَبًا",
    "german sharp s": "Straße ẞ",
    "turkish i": "İstanbul ıi",
    "math alphanumerics": "𝐇𝐞𝐥𝐥𝐨 𝔸𝔹",
    "private use": "\ue000\uf8ff",
    "noncharacters": "\ufdd0\ufffe\uffff",
    "plane 16": "\U00100000\U0010fffd",
    "long repeated": "a" * 300,
    "long number": "1234567890" * 20,
    "url": "https://example.com/a/b?c=d&e=f#g",
}


def random_codepoints(seed, n):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        cp = rng.randint(0, 0x10FFFF)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        out.append(chr(cp))
    return "".join(out)


def variant_goldens(path, component, variants, texts):
    """The tokenizer at `path` with `component` replaced by each variant, and its encodings of `texts`."""
    base = json.load(open(path, encoding="utf-8"))
    out = []
    for label, replacement in variants.items():
        base[component] = replacement
        tok = Tokenizer.from_str(json.dumps(base))
        rows = []
        for text in texts:
            enc = tok.encode(text)
            rows.append({"name": label, "text": text, "max_length": None, "ids": enc.ids, "offsets": [list(o) for o in enc.offsets]})
        out.append({"name": label, component: replacement, "cases": rows})
    return out


def main():
    xlmr, tiny, out = sys.argv[1:4]
    cases = dict(CASES)
    for i in range(8):
        cases[f"random code points {i}"] = random_codepoints(1000 + i, 24)
    doc = {"generator": f"tokenizers {tokenizers.__version__}, Tests/Fixtures/golden/make_tokenizer_goldens.py", "tokenizers": {}}
    for name, path in (("xlmr", xlmr), ("tiny", tiny)):
        tok = Tokenizer.from_file(path)
        rows = []
        for label, text in cases.items():
            for max_length in (None, 2, 5):
                if max_length and label not in ("mask in sentence", "long repeated", "emoji zwj family", "empty"):
                    continue
                tok.no_truncation()
                if max_length:
                    tok.enable_truncation(max_length)
                enc = tok.encode(text)
                rows.append({"name": label, "text": text, "max_length": max_length, "ids": enc.ids,
                             "offsets": [list(o) for o in enc.offsets], "tokens": enc.tokens})
        doc["tokenizers"][name] = rows
    # The same tiny tokenizer with other Metaspace spellings and schemes.
    variants = {
        "legacy add_prefix_space true": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True},
        "prepend_scheme first": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
        "prepend_scheme never": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": True},
        "split false": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False},
    }
    texts = ["Hello world", " leading space", "a<s>b c", "<s>x", "two  spaces", "hello <mask> there", "", "\u3000x"]
    doc["metaspace_variants"] = variant_goldens(tiny, "pre_tokenizer", variants, texts)
    # The same tiny tokenizer with the other normalisers bgem3 implements.
    base = json.load(open(tiny, encoding="utf-8"))
    precompiled = base["normalizer"]["normalizers"][0]
    normalizer_variants = {
        "NFKC": {"type": "NFKC"},
        "Strip both then Replace string": {"type": "Sequence", "normalizers": [
            precompiled, {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"String": "ab"}, "content": "xyz"}]},
        "Prepend": {"type": "Sequence", "normalizers": [precompiled, {"type": "Prepend", "prepend": "\u2581"}]},
        "Replace regex plus": {"type": "Replace", "pattern": {"Regex": "a+"}, "content": "b"},
    }
    texts = ["  abc ab  ", "ﬁnance ①②", "Ｈｅｌｌｏ ｗｏｒｌｄ", "caaat  aa", "", "   ", "e\u0301t\u00e9", "x <mask> y"]
    doc["normalizer_variants"] = variant_goldens(tiny, "normalizer", normalizer_variants, texts)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
