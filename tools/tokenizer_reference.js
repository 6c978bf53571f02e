// tokenizer_reference.js
//   Writes test/encoders/data/tokenizer_reference.json: token ids from Hugging
//   Face's tokenizers library (the backend of transformers 5's CLIPTokenizer)
//   for random texts built from awkward characters, with the golden vocabulary.
//   Offline developer tool, not needed to build or test:
//     npm install --prefix /tmp/hftok tokenizers@0.23.2
//     NODE_PATH=/tmp/hftok/node_modules node tools/tokenizer_reference.js
//   The pipeline below is the one transformers 5 builds in CLIPTokenizer; it
//   reproduces all 22 golden token id lists of test/golden/expected.json.
'use strict';
const fs = require('fs');
const { execFileSync } = require('child_process');
const { Tokenizer } = require('tokenizers');

const modelDir = 'test/golden/tiny-clip-quickgelu-f32/';
const vocab = JSON.parse(fs.readFileSync(modelDir + 'vocab.json', 'utf8'));
const merges = fs.readFileSync(modelDir + 'merges.txt', 'utf8').split('\n')
  .filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith('#version')));
const bos = '<|startoftext|>', eos = '<|endoftext|>';
const special = (s) => ({ id: vocab[s], content: s, single_word: false, lstrip: false,
  rstrip: false, normalized: false, special: true });
const pattern = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
const config = {
  version: '1.0',
  truncation: { direction: 'Right', max_length: 77, strategy: 'LongestFirst', stride: 0 },
  padding: null,
  added_tokens: [special(bos), special(eos)],
  normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' },
    { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
  pre_tokenizer: { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: pattern }, behavior: 'Removed', invert: true },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] },
  post_processor: { type: 'RobertaProcessing', sep: [eos, vocab[eos]], cls: [bos, vocab[bos]],
    trim_offsets: false, add_prefix_space: false },
  decoder: null,
  model: { type: 'BPE', dropout: null, unk_token: eos, continuing_subword_prefix: '',
    end_of_word_suffix: '</w>', fuse_unk: false, byte_fallback: false, ignore_merges: false,
    vocab, merges },
};
const tokenizer = Tokenizer.fromString(JSON.stringify(config));

let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const pick = (a) => a[Math.floor(rnd() * a.length)];

// Pieces chosen for the rules they exercise: whitespace classes, contractions,
// literal and case-changed special tokens, combining marks and NFC, U+0130,
// letters/numbers/symbols of several scripts, emoji sequences.
const pieces = ['a', 'b', 'e', 'x', 't', 's', 'A', 'Z', ' ', '  ', '\t', '\n', '\r', '\u00a0',
  '\u2003', '\u2028', '\u0085', '\u001c', '\u001f', '\u000b', '\u000c', "'", "'s", "'S", "'re",
  "'LL", "'d", "'m", "'t", "'ve", '!', '?', '.', bos, eos, '<|STARTOFTEXT|>', '<|EndOfText|>',
  '<', '|', '>', '\u0301', '\u0323', '\u0345', '\u0307', 'e\u0301', '\u00e9', '\u0130',
  '\u0131', 'I', '\u03a3', '\u03c3', '\u1e9e', '\u00df', '\u01c5', '\u2160', '\u00bd', '\u0663',
  '1', '2', '0', '\u65e5', '\u672c', '\u3042', '\u30c6', '\u1100', '\u1161', '\u11a8', '\uac00',
  '\u{1f600}', '\u{1f431}', '\u200d', '\ufe0f', '\u00a9', '\u2122', '\u0001', '\u007f',
  '\u2000', '\u2001', '\u3000', '\u180e', '\u200b', '\ufeff', '\u212b', '\u2126', '\u00c5',
  'A\u030a', '\u1f80', '\u0345\u0313', '\u0915\u093c', '\u0958', '\ufb01', '\u1d2c', '\u24b6',
  '\u0149', '\u1e9b\u0323', '&amp;', '-', '_', '\u00ad'];
const ranges = [[0x21, 0x7e], [0x80, 0x36f], [0x370, 0x3ff], [0x400, 0x52f], [0x590, 0x6ff],
  [0x900, 0xdff], [0x1000, 0x11ff], [0x1e00, 0x1fff], [0x2000, 0x2bff], [0x3000, 0x30ff],
  [0x3130, 0x318f], [0x4e00, 0x4e80], [0xac00, 0xd7a3], [0xfb00, 0xfffd], [0x10000, 0x1ffff]];

const texts = [];
while (texts.length < 600) {
  let s = '';
  for (let n = 1 + Math.floor(rnd() * 14); n > 0; n--) s += pick(pieces);
  texts.push(s);
}
while (texts.length < 1200) {
  let s = '';
  for (let n = 1 + Math.floor(rnd() * (texts.length % 10 === 0 ? 120 : 16)); n > 0; n--) {
    if (rnd() < 0.15) { s += ' '; continue; }
    const r = pick(ranges);
    s += String.fromCodePoint(r[0] + Math.floor(rnd() * (r[1] - r[0] + 1)));
  }
  if (!/[\p{Cn}\p{Cs}]/u.test(s)) texts.push(s);
}

// Character classes of code points assigned after Unicode 14 differ between
// this library and the utf8proc the runtime links; keep texts whose code
// points Python's Unicode 14 tables already know.
const known = JSON.parse(execFileSync('/usr/bin/python3', ['-c',
  'import json, sys, unicodedata as u; ' +
  'print(json.dumps([all(u.category(c) != "Cn" for c in t) for t in json.load(sys.stdin)]))'],
{ input: JSON.stringify(texts) }).toString());
for (let i = texts.length - 1; i >= 0; i--) if (!known[i]) texts.splice(i, 1);

(async () => {
  const ids = [];
  for (const t of texts) ids.push(Array.from((await tokenizer.encode(t)).getIds()));
  fs.writeFileSync('test/encoders/data/tokenizer_reference.json',
    JSON.stringify({ source: 'tokenizers (npm) with the CLIPTokenizer pipeline of transformers 5; tools/tokenizer_reference.js',
      model: 'tiny-clip-quickgelu-f32', max_length: 77, texts, ids }) + '\n');
  console.log(`wrote ${texts.length} texts`);
})();
