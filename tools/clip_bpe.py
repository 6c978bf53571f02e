#!/usr/bin/python3
# clip_bpe.py - CLIP-format byte-level BPE: learn a vocabulary from captions and tokenise like CLIPTokenizer.
#
# The vocabulary layout is CLIP's: the 256 byte symbols, the same 256 with "</w>", one token per learned
# merge in merge order, then <|startoftext|> and <|endoftext|>.  Text is NFC-normalised, whitespace runs
# collapse to one space, it is lower-cased, split by CLIP's regex, mapped byte-to-unicode and merged by rank.
#
# Self-check against the golden vocabulary:  /usr/bin/python3 tools/clip_bpe.py check
import json
import os
import sys
import unicodedata
from collections import Counter, defaultdict

import regex

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
SPLIT_RE = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)
WS_RE = regex.compile(r"\s+")


def byte_symbols():
    """The printable stand-in character for every byte value, in CLIP's order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_SYMBOL = byte_symbols()
BYTE_ORDER = sorted(BYTE_SYMBOL, key=lambda b: (b not in range(ord("!"), ord("~") + 1)
                                                and b not in range(ord("¡"), ord("¬") + 1)
                                                and b not in range(ord("®"), ord("ÿ") + 1), b))


def normalise(text):
    text = unicodedata.normalize("NFC", text)
    text = WS_RE.sub(" ", text).strip()
    return text.lower()


def pre_tokenise(text):
    """Words as tuples of byte symbols, the last one marked with </w>; special tokens pass as is."""
    words = []
    for piece in SPLIT_RE.findall(normalise(text)):
        if piece in (BOS, EOS):
            words.append((piece,))
            continue
        syms = [BYTE_SYMBOL[b] for b in piece.encode("utf-8")]
        syms[-1] += "</w>"
        words.append(tuple(syms))
    return words


def base_vocab():
    syms = [BYTE_SYMBOL[b] for b in BYTE_ORDER]
    return syms + [s + "</w>" for s in syms]


class Tokenizer:
    def __init__(self, vocab, merges, max_length=77):
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.max_length = max_length
        self.bos = vocab[BOS]
        self.eos = vocab[EOS]
        self.cache = {}

    @classmethod
    def load(cls, folder, max_length=None):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        merges = []
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line or line.startswith("#version"):
                    continue
                a, b = line.split(" ")
                merges.append((a, b))
        if max_length is None:
            max_length = 77
            cfg = os.path.join(folder, "tokenizer_config.json")
            if os.path.exists(cfg):
                with open(cfg) as f:
                    max_length = json.load(f).get("model_max_length", 77)
        return cls(vocab, merges, max_length)

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        syms = list(word)
        while len(syms) > 1:
            best = None
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, syms[i], syms[i + 1])
            if best is None:
                break
            _, a, b = best
            out = []
            i = 0
            while i < len(syms):
                if i < len(syms) - 1 and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        self.cache[word] = syms
        return syms

    def encode(self, text):
        """BOS, tokens, EOS, truncated to max_length (the EOS survives truncation)."""
        ids = []
        for w in pre_tokenise(text):
            ids.extend(self.vocab[s] for s in self.bpe(w))
        ids = ids[:self.max_length - 2]
        return [self.bos] + ids + [self.eos]

    def encode_padded(self, text):
        ids = self.encode(text)
        return ids + [self.eos] * (self.max_length - len(ids))


def learn(texts, num_merges, min_count=2):
    """Learn up to num_merges merges by repeatedly joining the most frequent adjacent pair."""
    counts = Counter()
    for t in texts:
        for w in pre_tokenise(t):
            if w[0] not in (BOS, EOS):
                counts[w] += 1
    words = [list(w) for w in counts]
    freq = [counts[w] for w in counts]
    pair_count = Counter()
    where = defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += freq[i]
            where[(a, b)].add(i)
    merges = []
    while len(merges) < num_merges and pair_count:
        # Highest count; ties broken by the pair itself so the result never depends on hash order.
        pair, c = min(pair_count.items(), key=lambda kv: (-kv[1], kv[0]))
        if c < min_count:
            break
        merges.append(pair)
        a, b = pair
        joined = a + b
        for i in list(where[pair]):
            w = words[i]
            for x, y in zip(w, w[1:]):
                pair_count[(x, y)] -= freq[i]
                if pair_count[(x, y)] <= 0:
                    del pair_count[(x, y)]
                where[(x, y)].discard(i)
            out = []
            j = 0
            while j < len(w):
                if j < len(w) - 1 and w[j] == a and w[j + 1] == b:
                    out.append(joined)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += freq[i]
                where[(x, y)].add(i)
        where.pop(pair, None)
    vocab_list = base_vocab() + [a + b for a, b in merges] + [BOS, EOS]
    vocab = {}
    for tok in vocab_list:
        if tok in vocab:
            raise ValueError("duplicate token %r" % tok)
        vocab[tok] = len(vocab)
    return vocab, merges


def save(folder, vocab, merges, max_length):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write("%s %s\n" % (a, b))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": max_length, "bos_token": BOS, "eos_token": EOS, "pad_token": EOS,
                   "unk_token": EOS, "tokenizer_class": "CLIPTokenizer"}, f, indent=2)
        f.write("\n")


def check_golden():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "golden")
    with open(os.path.join(root, "expected.json"), encoding="utf-8") as f:
        exp = json.load(f)
    bad = 0
    for name, m in exp["models"].items():
        tok = Tokenizer.load(os.path.join(root, name), max_length=77)
        if base_vocab() != [t for t, _ in sorted(tok.vocab.items(), key=lambda kv: kv[1])][:512]:
            print("base vocabulary order differs for", name)
            bad += 1
        for text, want in zip(exp["texts"], m["token_ids"]["CLIPTokenizer"]):
            got = tok.encode(text)
            if got != want:
                bad += 1
                print("MISMATCH %r\n  want %s\n  got  %s" % (text, want, got))
    print("golden token ids: %s" % ("all match" if bad == 0 else "%d mismatches" % bad))
    return bad == 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        sys.exit(0 if check_golden() else 1)
    sys.exit("usage: clip_bpe.py check")
