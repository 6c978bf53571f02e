#!/usr/bin/python3
"""Reference ids of open_clip's SimpleTokenizer for the token cross-check
(crosscheck.mjs runs this): TEXTS_FILE (a JSON array of strings) tokenized with
the merges of BPE_GZ, one line of ids per text, no padding.

Written here from open_clip's tokenizer.py (SimpleTokenizer with clean="lower":
ftfy.fix_text, html.unescape twice, strip, \\s+ collapsed, str.lower(); the
regex module's pattern with the two specials, IGNORECASE; GPT-2's byte
symbols; rank-ordered BPE; [sot] + ids + [eot]), run with the real ftfy on
PYTHONPATH.  A text that ftfy's mojibake repair (fix_encoding) changes is
written as "-": the runtime does not do that repair (see text_clean.h).
"""
import gzip
import html
import sys

import ftfy
import regex


def byte_symbols():
    printable = (list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAD)) +
                 list(range(0xAE, 0x100)))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table, [chr(b) for b in printable] + [table[b] for b in range(256) if b not in printable]


def load(bpe_gz):
    lines = gzip.open(bpe_gz).read().decode('utf-8').split('\n')[1:49152 - 256 - 2 + 1]
    merges = [tuple(line.split()) for line in lines]
    table, order = byte_symbols()
    vocab = order + [s + '</w>' for s in order] + [''.join(m) for m in merges]
    vocab += ['<start_of_text>', '<end_of_text>']
    return table, {s: i for i, s in enumerate(vocab)}, {m: i for i, m in enumerate(merges)}


def bpe(token, ranks):
    word = list(token[:-1]) + [token[-1] + '</w>']
    while len(word) > 1:
        pairs = [(ranks.get((word[i], word[i + 1]), None), i) for i in range(len(word) - 1)]
        pairs = [p for p in pairs if p[0] is not None]
        if not pairs:
            break
        best = min(pairs)[0]
        first, second = next((word[i], word[i + 1]) for r, i in pairs if r == best)
        merged, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                merged.append(first + second)
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word


def main():
    texts_file, bpe_gz = sys.argv[1], sys.argv[2]
    import json
    texts = json.load(open(texts_file, encoding='utf-8'))
    table, encoder, ranks = load(bpe_gz)
    pat = regex.compile(r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                        regex.IGNORECASE)
    out = []
    for text in texts:
        if ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False):
            out.append('-')
            continue
        clean = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        clean = regex.sub(r'\s+', ' ', clean).strip().lower()
        ids = [encoder['<start_of_text>']]
        for token in regex.findall(pat, clean):
            if token in ('<start_of_text>', '<end_of_text>'):
                ids.append(encoder[token])
                continue
            sym = ''.join(table[b] for b in token.encode('utf-8'))
            ids.extend(encoder[s] for s in bpe(sym, ranks))
        ids.append(encoder['<end_of_text>'])
        out.append(' '.join(map(str, ids)))
    sys.stdout.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
