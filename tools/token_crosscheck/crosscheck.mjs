// crosscheck.mjs
//   Token-for-token cross-check of the runtime's tokenizers against
//   independent implementations, on NTEXTS generated texts (texts.mjs).
//   Writes test/encoders/data/crosscheck/: texts.json.gz (the texts) and one
//   ids_NAME.txt.gz per tokenizer (a line of ids per text), which
//   test/encoders/test_crosscheck.c compares with the runtime in CI, without
//   npm.  The references:
//     - tokenizer.json files: @huggingface/transformers (JavaScript), here.
//     - open_clip's SimpleTokenizer: tools/token_crosscheck/openclip_ref.py
//       (open_clip's tokenizer code with the real ftfy), run from here.
//     - spiece.model: libsentencepiece (Debian's libsentencepiece-dev), through
//       tools/token_crosscheck/spm_ref.cc, run from here.
//   Offline developer tool, not needed to build or test:
//     npm install --prefix /tmp/tfjs --ignore-scripts @huggingface/transformers@4.3.2 tokenizers@0.23.2
//     apt-get install libsentencepiece-dev python3-regex python3-wcwidth
//     (ftfy 6.3.1's source, e.g. a checkout of rspeer/python-ftfy, on PYTHONPATH)
//     NODE_PATH=/tmp/tfjs/node_modules FTFY_PATH=/path/to/python-ftfy \
//       node tools/token_crosscheck/crosscheck.mjs
'use strict';
import fs from 'fs';
import path from 'path';
import zlib from 'zlib';
import { execFileSync } from 'child_process';
import { createRequire } from 'module';
import { generateTexts } from './texts.mjs';

const require = createRequire(import.meta.url);
const paths = (process.env.NODE_PATH || '').split(':');
const { PreTrainedTokenizer } = await import(require.resolve('@huggingface/transformers', { paths }));
const { Tokenizer: RustTokenizer } = require(require.resolve('tokenizers', { paths }));

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const OUT = path.join(ROOT, 'test/encoders/data/crosscheck');
const TOKENIZER_JSON = {
  // name: directory holding tokenizer.json and tokenizer_config.json
  gemma: 'test/golden2/tiny-siglip2-gemma',
  xlmr: 'test/golden2/tiny-clip-tokenizerjson',
  wordpiece: 'test/encoders/data/wordpiece',
  wordpiece_cased: 'test/encoders/data/wordpiece_cased',
  bytelevel: 'test/encoders/data/bytelevel',
};

fs.mkdirSync(OUT, { recursive: true });
const texts = generateTexts();
const writeGz = (name, text) => fs.writeFileSync(path.join(OUT, name), zlib.gzipSync(text, { level: 9 }));
writeGz('texts.json.gz', JSON.stringify(texts) + '\n');

for (const [name, dir] of Object.entries(TOKENIZER_JSON)) {
  const tj = JSON.parse(fs.readFileSync(path.join(ROOT, dir, 'tokenizer.json'), 'utf8'));
  const tc = JSON.parse(fs.readFileSync(path.join(ROOT, dir, 'tokenizer_config.json'), 'utf8'));
  const tok = new PreTrainedTokenizer(tj, tc);
  const js = texts.map((t) => tok.encode(t).join(' '));
  const rust = RustTokenizer.fromFile(path.join(ROOT, dir, 'tokenizer.json'));
  const rs = [];
  for (const t of texts) rs.push((await rust.encode(t)).getIds().join(' '));
  writeGz(`ids_${name}.txt.gz`, rs.join('\n') + '\n');
  writeGz(`ids_${name}.js.txt.gz`, js.join('\n') + '\n');
  console.log(`${name}: ${texts.length} texts, transformers.js differs from tokenizers on ` +
    `${js.filter((l, i) => l !== rs[i]).length}`);
}

// The Python and C++ references read the same texts from a plain file.
const plain = path.join(OUT, '..', 'crosscheck_texts.tmp.json');
fs.writeFileSync(plain, JSON.stringify(texts));
try {
  const py = execFileSync('/usr/bin/python3', [path.join(ROOT, 'tools/token_crosscheck/openclip_ref.py'), plain,
    path.join(ROOT, 'test/golden2/tiny-openclip/bpe_simple_vocab.txt.gz')],
  { env: { ...process.env, PYTHONPATH: process.env.FTFY_PATH || '' }, maxBuffer: 1 << 28 }).toString();
  writeGz('ids_openclip.txt.gz', py);
  console.log(`openclip: ${py.split('\n').length - 1} lines`);

  const bin = '/tmp/crosscheck_spm_ref';
  execFileSync('g++', ['-O1', '-o', bin, path.join(ROOT, 'tools/token_crosscheck/spm_ref.cc'), '-lsentencepiece']);
  for (const [name, model] of [['spm_siglip', 'test/golden2/tiny-siglip/spiece.model'],
    ['spm_bytefallback', 'test/encoders/data/crosscheck/bytefallback.model']]) {
    const out = execFileSync(bin, [path.join(ROOT, model), plain], { maxBuffer: 1 << 28 }).toString();
    writeGz(`ids_${name}.txt.gz`, out);
    console.log(`${name}: ${out.split('\n').length - 1} lines`);
  }
} finally {
  fs.unlinkSync(plain);
}
