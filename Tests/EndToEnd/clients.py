#!/usr/bin/env python3
"""Drives a real `bgem3 serve` with the real client packages people already run (versions pinned in
Tests/EndToEnd/clients-requirements.txt) and checks that every one gets the same answer as bgem3's own routes.

Usage: clients.py BGEM3_BINARY MODEL_DIR
Prints one line per check and "clients: N passed, N failed"; exits 1 on any failure.

The same text must get the same dense vector through every route and client (max |difference|
<= 1e-6, against /v1/m3/embeddings), /embed_sparse must give /v1/m3/embeddings' lexical weights,
and every reranker's order must be /v1/rerank's. LangChain's OpenAIEmbeddings with its default
settings tokenises with tiktoken and sends token ids: the server must refuse them with a 400 that
names check_embedding_ctx_length (never embed them as XLM-R ids). tiktoken's BPE file is fetched
from a host this machine cannot reach, so a stand-in encoder takes its place; the request LangChain
builds from it (token ids through the openai client) is what reaches the server.
"""
import json, urllib.request
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from bgem3server import Server  # noqa: E402

binary, model_dir = sys.argv[1:3]
server = Server(model_dir, binary=binary, args=["--precision", "fp32"])
base = server.base_url

passed = failed = 0
def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def post(path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def close(a, b, tolerance=1e-6):
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= tolerance


def attempt(name, function):
    try:
        function()
    except Exception as error:  # a client that raises is a failed check, not a crashed script
        check(name, False, f"{type(error).__name__}: {error}"[:600])


try:
    server.wait_ready(timeout=60)
    texts = ["What is BGE M3?", "Defination of BM25"]
    documents = ["BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
                 "BM25 is a bag-of-words retrieval function that ranks a set of documents.",
                 "Paris is the capital of France."]
    query = "what is BM25?"
    own = post("/v1/m3/embeddings", {"input": texts, "sparse": True})["data"]
    reference = [item["dense"] for item in own]
    own_rank = [item["index"] for item in post("/v1/rerank", {"query": query, "documents": documents})["results"]]

    def openai_client():
        from openai import OpenAI
        client = OpenAI(base_url=base + "/v1", api_key="unused")
        got = [item.embedding for item in client.embeddings.create(model="bge-m3", input=texts).data]
        check("openai embeddings.create", all(close(g, r) for g, r in zip(got, reference)))
        floats = [item.embedding for item in client.embeddings.create(model="bge-m3", input=texts, encoding_format="float").data]
        check("openai embeddings.create (float)", all(close(g, r) for g, r in zip(floats, reference)))
    attempt("openai", openai_client)

    def langchain_default():
        import tiktoken
        import openai
        from langchain_openai import OpenAIEmbeddings

        # tiktoken's cl100k_base cannot be downloaded here. The stand-in gives ids that every XLM-R
        # vocabulary (and the tiny test model's 6,002) holds, as real cl100k ids (0-100k) fall inside
        # BGE-M3's 250,002: accepted, they would embed a different text with a 200.
        class StandIn:
            name = "cl100k_base"
            def encode(self, text, **_):
                return [1000 + (ord(c) % 250) for c in text]
            def encode_ordinary(self, text, **_):
                return self.encode(text)
            def decode(self, ids):
                return "".join(chr(i - 1000) for i in ids)
        tiktoken.encoding_for_model = lambda *_: StandIn()
        tiktoken.get_encoding = lambda *_: StandIn()
        embedder = OpenAIEmbeddings(model="text-embedding-3-small", base_url=base + "/v1", api_key="unused", max_retries=0)
        try:
            vectors = embedder.embed_documents(texts)
            check("langchain OpenAIEmbeddings (default: tiktoken ids) is refused", False, f"got {len(vectors)} vectors with status 200")
        except openai.BadRequestError as error:
            check("langchain OpenAIEmbeddings (default: tiktoken ids) is refused with 400 naming the fix",
                  error.status_code == 400 and "check_embedding_ctx_length" in str(error), str(error)[:300])
    attempt("langchain default", langchain_default)

    def langchain_texts():
        from langchain_openai import OpenAIEmbeddings
        embedder = OpenAIEmbeddings(model="bge-m3", base_url=base + "/v1", api_key="unused", check_embedding_ctx_length=False)
        check("langchain OpenAIEmbeddings(check_embedding_ctx_length=False)", all(close(g, r) for g, r in zip(embedder.embed_documents(texts), reference)))
        check("langchain embed_query", close(embedder.embed_query(texts[0]), reference[0]))
    attempt("langchain texts", langchain_texts)

    def llama_index():
        from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference
        embedder = TextEmbeddingsInference(model_name="BAAI/bge-m3", base_url=base, timeout=60)
        got = embedder.get_text_embedding_batch(texts)
        check("llama-index TextEmbeddingsInference", all(close(g, r) for g, r in zip(got, reference)))
    attempt("llama-index embeddings", llama_index)

    def llama_index_rerank():
        from llama_index.core.schema import NodeWithScore, TextNode
        from llama_index.postprocessor.tei_rerank import TextEmbeddingInference
        reranker = TextEmbeddingInference(base_url=base, top_n=3)
        nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i)), score=0.0) for i, d in enumerate(documents)]
        ranked = reranker.postprocess_nodes(nodes, query_str=query)
        check("llama-index TEI rerank order", [int(n.node.id_) for n in ranked] == own_rank, f"{[n.node.id_ for n in ranked]} vs {own_rank}")
    attempt("llama-index rerank", llama_index_rerank)

    def haystack_embedder():
        from haystack.components.embedders import HuggingFaceAPITextEmbedder
        from haystack.utils import Secret
        embedder = HuggingFaceAPITextEmbedder(api_type="text_embeddings_inference", api_params={"url": base}, token=Secret.from_token("unused"))
        got = embedder.run(text=texts[0])["embedding"]
        check("haystack HuggingFaceAPITextEmbedder (TEI)", close(got, reference[0]))
    attempt("haystack embedder", haystack_embedder)

    def haystack_ranker():
        from haystack import Document
        from haystack.components.rankers import HuggingFaceTEIRanker
        ranker = HuggingFaceTEIRanker(url=base, top_k=3)
        ranked = ranker.run(query=query, documents=[Document(content=d, id=str(i)) for i, d in enumerate(documents)])["documents"]
        check("haystack HuggingFaceTEIRanker order", [int(d.id) for d in ranked] == own_rank, f"{[d.id for d in ranked]} vs {own_rank}")
    attempt("haystack ranker", haystack_ranker)

    def hub_feature_extraction():
        from huggingface_hub import InferenceClient
        client = InferenceClient(base_url=base)
        got = client.feature_extraction(texts[0], normalize=True, truncate=True)
        check("huggingface_hub InferenceClient.feature_extraction", close([float(x) for x in got.reshape(-1)], reference[0]))
    attempt("huggingface_hub", hub_feature_extraction)

    def ollama_client():
        import ollama
        client = ollama.Client(host=base)
        got = client.embed(model="bge-m3", input=texts).embeddings
        check("ollama Client.embed", all(close(g, r) for g, r in zip(got, reference)))
        legacy = client.embeddings(model="bge-m3", prompt=texts[0]).embedding
        check("ollama Client.embeddings (legacy)", close(legacy, reference[0]))
    attempt("ollama", ollama_client)

    def cohere_client():
        import cohere
        client = cohere.ClientV2(api_key="unused", base_url=base)
        answer = client.rerank(model="bge-m3", query=query, documents=documents, top_n=3)
        check("cohere ClientV2.rerank order", [r.index for r in answer.results] == own_rank, f"{[r.index for r in answer.results]} vs {own_rank}")
    attempt("cohere", cohere_client)

    def tei_sparse():
        sparse = post("/embed_sparse", {"inputs": texts})
        for item, pairs in zip(own, sparse):
            mine = dict(zip(item["sparse"]["indices"], item["sparse"]["values"]))
            theirs = {pair["index"]: pair["value"] for pair in pairs}
            check("/embed_sparse equals /v1/m3/embeddings' lexical weights",
                  mine.keys() == theirs.keys() and all(abs(mine[k] - theirs[k]) <= 1e-6 for k in mine))
    attempt("/embed_sparse", tei_sparse)
finally:
    server.stop(timeout=30)
print(f"clients: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
