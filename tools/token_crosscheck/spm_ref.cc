// spm_ref.cc
//   Reference ids of SentencePiece itself (libsentencepiece, Debian's
//   libsentencepiece-dev) for the token cross-check (crosscheck.mjs builds and
//   runs this): every text of TEXTS_FILE (a JSON array of strings) encoded
//   with MODEL as SentencePieceProcessor::Encode does, one line of ids per
//   text.  The JSON is read by a small reader for exactly the escapes
//   JSON.stringify writes.
#include <sentencepiece_processor.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static void put_utf8(std::string &s, unsigned cp) {
  if (cp < 0x80) s += char(cp);
  else if (cp < 0x800) { s += char(0xC0 | cp >> 6); s += char(0x80 | (cp & 63)); }
  else if (cp < 0x10000) { s += char(0xE0 | cp >> 12); s += char(0x80 | (cp >> 6 & 63)); s += char(0x80 | (cp & 63)); }
  else { s += char(0xF0 | cp >> 18); s += char(0x80 | (cp >> 12 & 63)); s += char(0x80 | (cp >> 6 & 63)); s += char(0x80 | (cp & 63)); }
}

static std::vector<std::string> read_texts(const std::string &json) {
  std::vector<std::string> out;
  size_t i = json.find('[') + 1;
  while (i < json.size()) {
    while (i < json.size() && json[i] != '"' && json[i] != ']') i++;
    if (i >= json.size() || json[i] == ']') break;
    std::string s;
    for (i++; json[i] != '"'; i++) {
      if (json[i] != '\\') { s += json[i]; continue; }
      char e = json[++i];
      if (e == 'n') s += '\n'; else if (e == 't') s += '\t'; else if (e == 'r') s += '\r';
      else if (e == 'b') s += '\b'; else if (e == 'f') s += '\f';
      else if (e == 'u') {
        unsigned cp = std::stoul(json.substr(i + 1, 4), nullptr, 16);
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && json[i + 1] == '\\' && json[i + 2] == 'u') {
          unsigned lo = std::stoul(json.substr(i + 3, 4), nullptr, 16);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        put_utf8(s, cp);
      } else s += e;
    }
    i++;
    out.push_back(s);
  }
  return out;
}

int main(int argc, char **argv) {
  if (argc != 3) { std::cerr << "usage: spm_ref MODEL TEXTS_JSON\n"; return 2; }
  sentencepiece::SentencePieceProcessor sp;
  auto st = sp.Load(argv[1]);
  if (!st.ok()) { std::cerr << st.ToString() << "\n"; return 1; }
  std::ifstream f(argv[2]);
  std::stringstream buf;
  buf << f.rdbuf();
  for (const std::string &t : read_texts(buf.str())) {
    std::vector<int> ids;
    sp.Encode(t, &ids);
    for (size_t i = 0; i < ids.size(); i++) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  }
}
