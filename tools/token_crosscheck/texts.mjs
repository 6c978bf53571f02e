// texts.mjs
//   The generated texts of the token cross-check (tools/token_crosscheck/README
//   in crosscheck.mjs's header): NTEXTS texts built from pieces of every Unicode
//   general category, whitespace of every kind, the special-token literals of
//   the tokenizers under test, emoji sequences, combining sequences, case
//   traps, HTML entities and ordinary English and Korean words, from a fixed
//   seed.  Category pools are read from the running Node's Unicode data (\p{gc}),
//   which is what the runtime's utf8proc and Node's tokenizers both follow.
'use strict';

export const NTEXTS = 1500;

const CATEGORIES = ['Lu', 'Ll', 'Lt', 'Lm', 'Lo', 'Mn', 'Mc', 'Me', 'Nd', 'Nl', 'No', 'Pc', 'Pd', 'Ps',
  'Pe', 'Pi', 'Pf', 'Po', 'Sm', 'Sc', 'Sk', 'So', 'Zs', 'Zl', 'Zp', 'Cc', 'Cf', 'Co', 'Cn'];

function pools() {
  const res = CATEGORIES.map((c) => [c, new RegExp(`^\\p{gc=${c}}$`, 'u')]);
  const out = Object.fromEntries(CATEGORIES.map((c) => [c, []]));
  for (let cp = 0; cp <= 0x10FFFF; cp++) {
    if (cp === 0 || (cp >= 0xD800 && cp <= 0xDFFF)) continue;  // no NUL: PostgreSQL text has none
    const ch = String.fromCodePoint(cp);
    for (const [c, re] of res) if (re.test(ch)) { out[c].push(cp); break; }
  }
  return out;
}

const WORDS = ['a', 'photo', 'of', 'the', 'cat', 'dog', 'red', 'car', 'playing', 'with', 'ball', 'in',
  'park', 'sunny', 'afternoon', 'children', 'laughing', 'running', 'quick', 'brown', 'fox', 'jumps',
  'over', 'lazy', 'hello', 'world', 'don\'t', 'it\'s', 'we\'re', 'I\'ll', 'they\'ve', 'café', 'naïve',
  'façade', 'résumé', 'Ångström', 'straße', 'İstanbul', 'ΣΊΣΥΦΟΣ', 'ὀδυσσεύς', 'Москва', 'שלום',
  'مرحبا', 'नमस्ते', 'ภาษาไทย', '日本語', 'テキスト', '中文', '고양이', '사진', '강아지가', '공원에서',
  '빨간', '자동차', '한국어', '텍스트', '검색', 'UPPER', 'MiXeD', 'under_score', 'hyphen-ated',
  'e-mail', 'x86_64', 'v1.2.3', '3.14159', '1,000,000', '2024년', '15일', '🐱', '🐶', 'x'.repeat(120),
  'Donaudampfschifffahrtsgesellschaftskapitän', 'antidisestablishmentarianism'];
const SPACES = [' ', '  ', '   ', '\t', '\n', '\r\n', '\r', '\u00a0', '\u2003', '\u3000', '\u2028',
  '\u2029', '\u0085', '\u000b', '\u000c', '\u001c', '\u001f', '\u180e', '\u200b', '\ufeff', ' \t \n '];
const SPECIALS = ['<s>', '</s>', '<unk>', '<pad>', '<mask>', '<eos>', '<bos>', '[CLS]', '[SEP]',
  '[UNK]', '[MASK]', '[PAD]', '<|startoftext|>', '<|endoftext|>', '<start_of_text>', '<end_of_text>',
  '<0x41>', '▁', '▁▁', '\u2581a', '<sep>', '[IMG]', 'ＩＭＧ', 'IMG'];
const EMOJI = ['👍', '👍🏽', '👨‍👩‍👧', '🇰🇷', '🇺🇸', '❤️', '🏳️‍🌈', '1️⃣', '🧑🏿‍🚀', '☺', '✌🏻',
  '👩‍❤️‍💋‍👨', '🐈‍⬛'];
const TRAPS = ['İ', 'ı', 'ß', 'ẞ', 'ς', 'Σ', 'ΣΑΣ', 'ǅ', 'ǈ', 'ﬁ', 'ﬀ', 'ﬃ', 'Ａ', 'ｚ', '１', 'ｶ',
  'ﾟ', '㍻', '½', '²', 'Ⅷ', 'ℌ', 'K', 'Å', 'Ω', 'ŉ', 'ǰ', 'ΐ', 'ﬅ', 'Ϊ́', '\u0130\u0307', 'e\u0301',
  'a\u030a\u0323', '\u1100\u1161\u11a8', '\u0915\u094d\u0937', '\u0e01\u0e33', 'Ǆ', '⑳', '㊿', '…',
  '“', '”', '‘', '’', '«', '»', '—', '–', '‐', '•', '·', '©', '®', '™', '°', '€', '¥', '₩'];
const ENTITIES = ['&amp;', '&lt;', '&gt;', '&quot;', '&#39;', '&#x41;', '&#128;', '&eacute;', '&EACUTE;',
  '&nbsp;', '&copy', '&notin', '&amp;amp;', '&#0;', '&#xD800;', '&#1114112;', '&frac12;', '\u001b[31m'];
const PUNCT = ['!', '?', '.', ',', ';', ':', '-', '_', '(', ')', '[', ']', '{', '}', '<', '>', '#',
  '$', '%', '^', '*', '~', '`', '|', '\\', '/', '\'', '"', '@', '+', '=', '&', '...', '!!!', '?!'];

export function generateTexts() {
  const pool = pools();
  let seed = 20240614;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const fromCategory = (c, n) => {
    let s = '';
    for (let i = 0; i < n; i++) {
      const p = pool[c];
      // three in four from the BMP part of the pool, when it has one
      let cp = pick(p);
      if (rnd() < 0.75) {
        const lo = p.findIndex((x) => x > 0xFFFF);
        const end = lo < 0 ? p.length : lo;
        if (end > 0) cp = p[Math.floor(rnd() * end)];
      }
      s += String.fromCodePoint(cp);
    }
    return s;
  };
  const texts = [];
  for (let t = 0; t < NTEXTS; t++) {
    const n = 1 + Math.floor(rnd() * 10);
    let s = '';
    for (let i = 0; i < n; i++) {
      const r = rnd();
      let piece;
      if (r < 0.28) piece = pick(WORDS);
      else if (r < 0.50) piece = fromCategory(pick(CATEGORIES), 1 + Math.floor(rnd() * 4));
      else if (r < 0.58) piece = pick(SPACES);
      else if (r < 0.64) piece = pick(SPECIALS);
      else if (r < 0.70) piece = pick(EMOJI);
      else if (r < 0.80) piece = pick(TRAPS);
      else if (r < 0.85) piece = pick(ENTITIES);
      else if (r < 0.93) piece = pick(PUNCT);
      else if (r < 0.97) piece = pick(WORDS).toUpperCase();
      else piece = fromCategory(pick(['Mn', 'Me', 'Mc']), 1) + fromCategory('Lo', 1) + fromCategory('Mn', 2);
      s += piece + (rnd() < 0.6 ? ' ' : '');
    }
    // a few texts that start or end with space, or are only space / punctuation
    if (t % 97 === 0) s = pick(SPACES) + s + pick(SPACES);
    if (t % 211 === 0) s = pick(PUNCT) + pick(PUNCT) + pick(PUNCT);
    if (t % 307 === 0) s = pick(SPACES);
    texts.push(s);
  }
  return texts;
}
