#!/usr/bin/env python3
"""Regenerate the seed inputs of the data/ fuzz targets.

Writes small valid and deliberately broken llm.c token shards into
tests/fuzz/corpus/data_shard/ and GPT-2 tokenizer files into
tests/fuzz/corpus/data_tokenizer/, laid out exactly as llm.c's
dev/data/data_common.py and train_gpt2.py write them.  The fuzz targets
read the first two bytes of a shard input as the vocabulary bound, which
for a real shard is the low half of the magic (20240520 & 0xffff = 53928).
Usage: scripts/data_fuzz_corpus.py [repo_root]
"""
import os
import struct
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
shard_dir = os.path.join(root, "tests/fuzz/corpus/data_shard")
tok_dir = os.path.join(root, "tests/fuzz/corpus/data_tokenizer")
os.makedirs(shard_dir, exist_ok=True)
os.makedirs(tok_dir, exist_ok=True)


def shard(tokens, magic=20240520, version=1, count=None):
    header = [0] * 256
    header[0], header[1] = magic, version
    header[2] = len(tokens) if count is None else count
    return struct.pack("<256i", *header) + struct.pack("<%dH" % len(tokens), *tokens)


def tokenizer(tokens, version=2, eot=None, vocab=None):
    header = [0] * 256
    header[0], header[1] = 20240328, version
    header[2] = len(tokens) if vocab is None else vocab
    header[3] = (len(tokens) - 1) if eot is None else eot
    body = b"".join(bytes([len(t)]) + t for t in tokens)
    return struct.pack("<256I", *header) + body


def write(folder, name, data):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


text = b"The dog barks. Anna has a red ball."
write(shard_dir, "valid_bytes.bin", shard(list(text)))
write(shard_dir, "valid_empty.bin", shard([]))
write(shard_dir, "valid_high_ids.bin", shard([0, 50256, 65535, 53927, 53928]))
write(shard_dir, "truncated_body.bin", shard(list(text))[:-3])
write(shard_dir, "extra_bytes.bin", shard(list(text)) + b"\0\0")
write(shard_dir, "bad_magic.bin", shard(list(text), magic=20240328))
write(shard_dir, "bad_version.bin", shard(list(text), version=2))
write(shard_dir, "negative_count.bin", shard(list(text), count=-1))
write(shard_dir, "short_header.bin", shard(list(text))[:100])

pieces = [b"a", b" the", b"\xe2\x82", b"\xac", b"<|endoftext|>"]
write(tok_dir, "valid_v2.bin", tokenizer(pieces))
write(tok_dir, "valid_v1.bin", tokenizer(pieces, version=1))
write(tok_dir, "truncated.bin", tokenizer(pieces)[:-4])
write(tok_dir, "zero_length.bin", tokenizer(pieces)[:1024] + b"\0" + tokenizer(pieces)[1025:])
write(tok_dir, "eot_out_of_range.bin", tokenizer(pieces, eot=5))
write(tok_dir, "vocab_too_large.bin", tokenizer(pieces, vocab=50257))
write(tok_dir, "trailing.bin", tokenizer(pieces) + b"zz")
write(tok_dir, "bad_version.bin", tokenizer(pieces, version=7))
print("wrote", len(os.listdir(shard_dir)), "shard seeds and", len(os.listdir(tok_dir)), "tokenizer seeds")
