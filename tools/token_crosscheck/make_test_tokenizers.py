#!/usr/bin/python3
"""Writes the project's own tokenizer.json test models, each with a
tokenizer_config.json, for the token cross-check (crosscheck.mjs computes
their reference ids with @huggingface/transformers):

  test/encoders/data/wordpiece/   BERT-style WordPiece as bert-base-uncased's
                                  tokenizer.json has it: BertNormalizer (clean
                                  text, Chinese characters split, lower case,
                                  accents stripped), BertPreTokenizer, WordPiece
                                  with "##" and max_input_chars_per_word 100,
                                  [CLS] $A [SEP]
  test/encoders/data/wordpiece_cased/  the same, cased, accents kept
  test/encoders/data/bytelevel/   RoBERTa-style byte-level BPE: ByteLevel
                                  pre-tokenizer (GPT-2's pattern), <s> $A </s>,
                                  "<mask>" with lstrip

Vocabularies are learned here from a small fixed English/Korean/mixed corpus
(a greedy WordPiece-like pick of frequent substrings; 600 byte-level BPE
merges), so the files are deterministic and small.

Offline developer tool:  /usr/bin/python3 tools/token_crosscheck/make_test_tokenizers.py
(needs python3-regex)
"""
import collections
import json
import os
import unicodedata

import regex

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..'))
OUT = os.path.join(ROOT, 'test', 'encoders', 'data')

CORPUS = """a photo of a cat. a photo of a dog. a red car in the park. the quick brown fox jumps over the lazy dog.
children laughing and running in the green park near the river on a sunny afternoon.
a small brown dog playing with a red ball. don't stop believin'. it's 3.14159 o'clock. we're here, they've gone.
hello world! naïve café façade résumé Ångström straße İstanbul σίσυφος Москва шлом שלום مرحبا नमस्ते ภาษาไทย
日本語のテキスト 中文文本 画像検索 고양이 사진 강아지가 공원에서 공을 가지고 뛰어놀고 있습니다. 한국어 텍스트 검색
빨간 자동차 (red car)! 2024년 3월 15일 오후 3시 30분 서울의 밤하늘에 빛나는 별들과 한강 다리 위의 불빛
hyphen-ated words and under_scores, e-mail x86_64 v1.2.3 1,000,000 numbers 1234567890 emoji 🐱🐶 and symbols ©®™
UPPER lower MiXeD photograph photographs photography playing played plays player running runner runs
""" * 3


def bert_words(text, lower):
    """What BertNormalizer + BertPreTokenizer make of the corpus, for picking a vocabulary."""
    if lower:
        text = ''.join(c for c in unicodedata.normalize('NFD', text.lower()) if unicodedata.category(c) != 'Mn')
    out = []
    for chunk in text.split():
        word = ''
        for c in chunk:
            cat = unicodedata.category(c)
            cjk = 0x4E00 <= ord(c) <= 0x9FFF or 0x3400 <= ord(c) <= 0x4DBF
            if cat.startswith('P') or (0x21 <= ord(c) <= 0x7E and not c.isalnum()) or cjk:
                if word:
                    out.append(word)
                out.append(c)
                word = ''
            else:
                word += c
        if word:
            out.append(word)
    return out


def wordpiece_vocab(lower):
    words = collections.Counter(bert_words(CORPUS, lower))
    chars = sorted({c for w in words for c in w})
    vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    vocab += chars + ['##' + c for c in chars]
    # whole frequent words, then frequent word pieces (prefixes and suffixes)
    pieces = collections.Counter()
    for w, n in words.items():
        for i in range(1, len(w)):
            pieces[w[:i + 1]] += n
            if i > 0:
                pieces['##' + w[i:]] += n
    for w, _ in words.most_common(250):
        if w not in vocab:
            vocab.append(w)
    for p, _ in sorted(pieces.items(), key=lambda kv: (-kv[1], kv[0]))[:400]:
        if p not in vocab:
            vocab.append(p)
    return {t: i for i, t in enumerate(vocab)}


def special(content, id_, lstrip=False):
    return {'id': id_, 'content': content, 'single_word': False, 'lstrip': lstrip, 'rstrip': False,
            'normalized': False, 'special': True}


def write(name, tokenizer, config):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
        f.write('\n')
    with open(os.path.join(d, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
        json.dump(config, f, indent=1)
        f.write('\n')


def make_wordpiece(name, lower):
    vocab = wordpiece_vocab(lower)
    cls, sep = vocab['[CLS]'], vocab['[SEP]']
    tok = {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [special(t, vocab[t]) for t in ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']],
        'normalizer': {'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True,
                       'strip_accents': None if lower else False, 'lowercase': lower},
        'pre_tokenizer': {'type': 'BertPreTokenizer'},
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'SpecialToken': {'id': '[CLS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                       {'SpecialToken': {'id': '[SEP]', 'type_id': 0}}],
            'pair': [{'SpecialToken': {'id': '[CLS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                     {'SpecialToken': {'id': '[SEP]', 'type_id': 0}}, {'Sequence': {'id': 'B', 'type_id': 1}},
                     {'SpecialToken': {'id': '[SEP]', 'type_id': 1}}],
            'special_tokens': {'[CLS]': {'id': '[CLS]', 'ids': [cls], 'tokens': ['[CLS]']},
                               '[SEP]': {'id': '[SEP]', 'ids': [sep], 'tokens': ['[SEP]']}}},
        'decoder': {'type': 'WordPiece', 'prefix': '##', 'cleanup': True},
        'model': {'type': 'WordPiece', 'unk_token': '[UNK]', 'continuing_subword_prefix': '##',
                  'max_input_chars_per_word': 100, 'vocab': vocab},
    }
    config = {'tokenizer_class': 'BertTokenizer', 'do_lower_case': lower, 'model_max_length': 512,
              'unk_token': '[UNK]', 'sep_token': '[SEP]', 'pad_token': '[PAD]', 'cls_token': '[CLS]',
              'mask_token': '[MASK]', 'tokenize_chinese_chars': True,
              'strip_accents': None if lower else False}
    write(name, tok, config)


def byte_table():
    printable = (list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAD)) +
                 list(range(0xAE, 0x100)))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def make_bytelevel():
    table = byte_table()
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
    words = collections.Counter(tuple(table[b] for b in w.encode('utf-8')) for w in pat.findall(CORPUS))
    merges = []
    for _ in range(600):
        pairs = collections.Counter()
        for w, n in words.items():
            for i in range(len(w) - 1):
                pairs[(w[i], w[i + 1])] += n
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        new = collections.Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += n
        words = new
    vocab = ['<s>', '<pad>', '</s>', '<unk>'] + [table[b] for b in range(256)]
    for a, b in merges:
        if a + b not in vocab:
            vocab.append(a + b)
    vocab.append('<mask>')
    ids = {t: i for i, t in enumerate(vocab)}
    tok = {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [special('<s>', 0), special('<pad>', 1), special('</s>', 2), special('<unk>', 3),
                         special('<mask>', ids['<mask>'], lstrip=True)],
        'normalizer': None,
        'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True},
        'post_processor': {'type': 'RobertaProcessing', 'sep': ['</s>', 2], 'cls': ['<s>', 0],
                           'trim_offsets': True, 'add_prefix_space': False},
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                  'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                  'vocab': ids, 'merges': [a + ' ' + b for a, b in merges]},
    }
    config = {'tokenizer_class': 'RobertaTokenizer', 'model_max_length': 512, 'bos_token': '<s>',
              'eos_token': '</s>', 'unk_token': '<unk>', 'sep_token': '</s>', 'cls_token': '<s>',
              'pad_token': '<pad>', 'mask_token': '<mask>', 'add_prefix_space': False}
    write('bytelevel', tok, config)


make_wordpiece('wordpiece', True)
make_wordpiece('wordpiece_cased', False)
make_bytelevel()


def make_spm_bytefallback():
    """A SentencePiece Unigram model with byte fallback and two user-defined
    symbols, trained by spm_train (Debian's sentencepiece) on the corpus."""
    import subprocess
    import tempfile
    d = os.path.join(OUT, 'crosscheck')
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, 'corpus.txt')
        with open(corpus, 'w', encoding='utf-8') as f:
            f.write(CORPUS)
        subprocess.run(['spm_train', '--input=' + corpus, '--model_prefix=' + os.path.join(tmp, 'm'),
                        '--vocab_size=700', '--model_type=unigram', '--byte_fallback=true',
                        '--character_coverage=0.98', '--user_defined_symbols=<sep>,[IMG],ＩＭＧ',
                        '--hard_vocab_limit=false', '--seed_sentencepiece_size=20000',
                        '--num_threads=1', '--random_seed=1', '--minloglevel=2'], check=True)
        with open(os.path.join(tmp, 'm.model'), 'rb') as f:
            model = f.read()
    with open(os.path.join(d, 'bytefallback.model'), 'wb') as f:
        f.write(model)


if __name__ == '__main__':
    make_spm_bytefallback()
