/*
 * tokenizer.c
 *	  CLIP byte-level BPE: loading vocab.json + merges.txt, and encoding text
 *	  into BOS, tokens, EOS as Hugging Face's CLIPTokenizer does.
 *
 * Encoding, per the reference (transformers 5, tokenizers backend):
 *	 1. "<|startoftext|>" / "<|endoftext|>" written literally in the raw text
 *		are special tokens; the text between them is processed on its own.
 *	 2. NFC, whitespace runs collapsed, lower case (tokenizer_text.c).
 *	 3. Pre-tokenisation with CLIP's pattern; whitespace is dropped.
 *	 4. Each pre-token's UTF-8 bytes become GPT-2's byte symbols, "</w>" is
 *		appended to the last one, and merges apply lowest rank first.
 *	 5. Truncation keeps BOS first and EOS last.
 * Whitespace never survives step 2 except as a separator, so the text is
 * walked lazily in whitespace-separated chunks and the walk stops once the
 * output is full.
 */
#include "tokenizer.h"
#include "bpe.h"
#include "text_clean.h"
#include "tokenizer_text.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#define BOS_STRING "<|startoftext|>"
#define EOS_STRING "<|endoftext|>"
#define OPENCLIP_BOS_STRING "<start_of_text>"
#define OPENCLIP_EOS_STRING "<end_of_text>"

/* SimpleTokenizer reads this many merges after the header line: 49152 - 256 - 2 */
#define OPENCLIP_MAX_MERGES 48894
#define WORD_END_SUFFIX "</w>"

/* Far above any real vocabulary (CLIP: 49,408; multilingual ones ~250k). */
#define MAX_VOCAB_ENTRIES (1 << 22)
#define MAX_MERGES (1 << 24)

/*
 * A whitespace-free run of text is read up to this many bytes (or more for a
 * large max_ids); see window_bytes().
 */
#define MIN_WINDOW_BYTES ((size_t) 16 << 10)

#define UNSET_OFFSET UINT32_MAX

struct cm_tokenizer
{
	int32_t		n_vocab;
	char	   *strings;		/* every token string, NUL-terminated */
	uint32_t   *string_offset;	/* [n_vocab] into strings */
	uint32_t   *string_length;	/* [n_vocab] bytes, without the NUL */
	int32_t    *vocab_slots;	/* [vocab_mask + 1] open addressing; -1 free */
	size_t		vocab_mask;
	size_t		longest_token;	/* bytes */

	cm_bpe_merges merges;		/* ranked by line order in merges.txt */

	int32_t		byte_id[256];	/* byte symbol, mid-word */
	int32_t		byte_end_id[256];	/* byte symbol + "</w>", word end */
	int32_t		bos_id;
	int32_t		eos_id;
	int32_t		unk_id;			/* for a byte symbol missing from vocab */

	/*
	 * open_clip's SimpleTokenizer: its vocabulary built from the merges, its
	 * text cleaning, and "<start_of_text>" / "<end_of_text>" recognised in
	 * the cleaned text rather than in the raw text.
	 */
	bool		openclip;
	bool		clean_lower;
};

/* ---------------------------------------------------------------- hashing */

static int32_t
vocab_find(const cm_tokenizer *tok, const char *s, size_t n)
{
	size_t		i = cm_hash_bytes(s, n) & tok->vocab_mask;

	for (;;)
	{
		int32_t		id = tok->vocab_slots[i];

		if (id < 0)
			return -1;
		if (tok->string_length[id] == n &&
			memcmp(tok->strings + tok->string_offset[id], s, n) == 0)
			return id;
		i = (i + 1) & tok->vocab_mask;
	}
}

/* Insert id, or let it replace the id of an equal string (a dict's last wins). */
static void
vocab_insert_last(cm_tokenizer *tok, int32_t id)
{
	const char *s = tok->strings + tok->string_offset[id];
	size_t		n = tok->string_length[id];
	size_t		i = cm_hash_bytes(s, n) & tok->vocab_mask;

	while (tok->vocab_slots[i] >= 0)
	{
		int32_t		other = tok->vocab_slots[i];

		if (tok->string_length[other] == n &&
			memcmp(tok->strings + tok->string_offset[other], s, n) == 0)
			break;
		i = (i + 1) & tok->vocab_mask;
	}
	tok->vocab_slots[i] = id;
}

static void
vocab_insert(cm_tokenizer *tok, int32_t id)
{
	const char *s = tok->strings + tok->string_offset[id];
	size_t		i = cm_hash_bytes(s, tok->string_length[id]) & tok->vocab_mask;

	while (tok->vocab_slots[i] >= 0)
		i = (i + 1) & tok->vocab_mask;
	tok->vocab_slots[i] = id;
}

/* ---------------------------------------------------------------- loading */

static bool
is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static cm_status
load_vocab(cm_tokenizer *tok, const char *json, size_t len, cm_error *err)
{
	cJSON	   *root;
	const cJSON *entry;
	const char *end = NULL;
	size_t		n = 0;
	size_t		arena = 0;
	size_t		slots;
	size_t		used = 0;
	cm_status	status = CM_OK;

	if (len == 0)
		return cm_set_error(err, CM_ERR_MODEL, "vocab.json is empty");
	root = cJSON_ParseWithLengthOpts(json, len, &end, false);
	if (root == NULL)
		return cm_set_error(err, CM_ERR_MODEL,
							"vocab.json is not valid JSON (error near byte %td)",
							end != NULL ? end - json : (ptrdiff_t) 0);
	if (end != NULL)
	{
		while (end < json + len && is_json_space(*end))
			end++;
		if (end < json + len)
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "vocab.json has unexpected data after the JSON value at byte %td",
								  end - json);
			goto done;
		}
	}
	if (!cJSON_IsObject(root))
	{
		status = cm_set_error(err, CM_ERR_MODEL,
							  "vocab.json must be a JSON object mapping token strings to ids");
		goto done;
	}

	cJSON_ArrayForEach(entry, root)
	{
		size_t		klen = entry->string ? strlen(entry->string) : 0;

		if (++n > MAX_VOCAB_ENTRIES)
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "vocab.json has more than %d entries", MAX_VOCAB_ENTRIES);
			goto done;
		}
		if (!cm_add_size(arena, klen + 1, &arena))
		{
			status = cm_set_error(err, CM_ERR_MODEL, "vocab.json is too large");
			goto done;
		}
	}
	if (n == 0)
	{
		status = cm_set_error(err, CM_ERR_MODEL, "vocab.json has no tokens");
		goto done;
	}
	/* arena <= input length + n, so offsets fit in 32 bits */
	if (arena >= UNSET_OFFSET || !cm_hash_table_size(n, &slots))
	{
		status = cm_set_error(err, CM_ERR_MODEL, "vocab.json is too large");
		goto done;
	}

	tok->n_vocab = (int32_t) n;
	tok->strings = malloc(arena);
	tok->string_offset = malloc(n * sizeof(uint32_t));
	tok->string_length = malloc(n * sizeof(uint32_t));
	tok->vocab_slots = malloc(slots * sizeof(int32_t));
	if (!tok->strings || !tok->string_offset || !tok->string_length || !tok->vocab_slots)
	{
		status = cm_set_error(err, CM_ERR_NOMEM, "out of memory loading vocab.json");
		goto done;
	}
	tok->vocab_mask = slots - 1;
	memset(tok->vocab_slots, 0xff, slots * sizeof(int32_t));
	for (size_t i = 0; i < n; i++)
		tok->string_offset[i] = UNSET_OFFSET;

	cJSON_ArrayForEach(entry, root)
	{
		const char *key = entry->string ? entry->string : "";
		size_t		klen = strlen(key);
		double		v;
		int32_t		id;

		if (!cJSON_IsNumber(entry))
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "vocab.json: the id of token \"%.64s\" is not a number",
								  key);
			goto done;
		}
		v = entry->valuedouble;
		if (!(v >= 0 && v < (double) n) || (double) (int32_t) v != v)
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "vocab.json: token \"%.64s\" has id %g; ids must be integers in [0, %zu), one per token",
								  key, v, n);
			goto done;
		}
		id = (int32_t) v;
		if (tok->string_offset[id] != UNSET_OFFSET)
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "vocab.json: id %d is given to both \"%.64s\" and \"%.64s\"",
								  id, tok->strings + tok->string_offset[id], key);
			goto done;
		}
		if (vocab_find(tok, key, klen) >= 0)
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "vocab.json: token \"%.64s\" appears more than once", key);
			goto done;
		}
		memcpy(tok->strings + used, key, klen + 1);
		tok->string_offset[id] = (uint32_t) used;
		tok->string_length[id] = (uint32_t) klen;
		used += klen + 1;
		if (klen > tok->longest_token)
			tok->longest_token = klen;
		vocab_insert(tok, id);
	}

done:
	cJSON_Delete(root);
	return status;
}

static void
load_byte_symbols(cm_tokenizer *tok)
{
	for (int b = 0; b < 256; b++)
	{
		int32_t		cp = cm_bpe_byte_char((unsigned char) b);
		char		sym[8];
		size_t		n;
		int32_t		id;

		/* every code point here is below U+0800: two bytes at most */
		if (cp < 0x80)
		{
			sym[0] = (char) cp;
			n = 1;
		}
		else
		{
			sym[0] = (char) (0xC0 | (cp >> 6));
			sym[1] = (char) (0x80 | (cp & 0x3F));
			n = 2;
		}
		id = vocab_find(tok, sym, n);
		tok->byte_id[b] = id >= 0 ? id : tok->unk_id;
		memcpy(sym + n, WORD_END_SUFFIX, strlen(WORD_END_SUFFIX));
		id = vocab_find(tok, sym, n + strlen(WORD_END_SUFFIX));
		tok->byte_end_id[b] = id >= 0 ? id : tok->unk_id;
	}
}

static cm_status
load_merges(cm_tokenizer *tok, const char *text, size_t len, cm_error *err)
{
	size_t		lines = 1;
	size_t		line_no = 0;
	char	   *joined = NULL;
	size_t		joined_cap = 0;
	cm_status	status = CM_OK;

	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	if (cm_bpe_merges_init(&tok->merges, lines, err) != CM_OK)
		return CM_ERR_NOMEM;

	for (size_t pos = 0; pos < len;)
	{
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t		n = nl ? (size_t) (nl - line) : len - pos;
		const char *space;
		size_t		left_len,
					right_len;
		int32_t		left,
					right,
					merged;

		pos += n + (nl != NULL);
		line_no++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;
		if (line_no == 1 && n >= 8 && memcmp(line, "#version", 8) == 0)
			continue;

		space = memchr(line, ' ', n);
		if (space == NULL || space == line || space == line + n - 1 ||
			memchr(space + 1, ' ', n - (size_t) (space + 1 - line)) != NULL)
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "merges.txt line %zu: expected two symbols separated by one space",
								  line_no);
			goto done;
		}
		left_len = (size_t) (space - line);
		right_len = n - left_len - 1;
		left = vocab_find(tok, line, left_len);
		right = vocab_find(tok, space + 1, right_len);
		if (left < 0 || right < 0)
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "merges.txt line %zu: symbol \"%.*s\" is not in vocab.json",
								  line_no, (int) (left < 0 ? (left_len > 64 ? 64 : left_len) :
												  (right_len > 64 ? 64 : right_len)),
								  left < 0 ? line : space + 1);
			goto done;
		}
		if (n - 1 > joined_cap)
		{
			char	   *p = realloc(joined, n);

			if (p == NULL)
			{
				status = cm_set_error(err, CM_ERR_NOMEM, "out of memory loading merges.txt");
				goto done;
			}
			joined = p;
			joined_cap = n;
		}
		memcpy(joined, line, left_len);
		memcpy(joined + left_len, space + 1, right_len);
		merged = vocab_find(tok, joined, left_len + right_len);
		if (merged < 0)
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "merges.txt line %zu: merged symbol \"%.*s\" is not in vocab.json",
								  line_no, (int) ((left_len + right_len) > 64 ? 64 : left_len + right_len),
								  joined);
			goto done;
		}
		if (tok->merges.n >= MAX_MERGES)
		{
			status = cm_set_error(err, CM_ERR_MODEL, "merges.txt has more than %d merges",
								  MAX_MERGES);
			goto done;
		}
		cm_bpe_merges_add(&tok->merges, left, right, merged);
	}

done:
	free(joined);
	return status;
}

cm_tokenizer *
cm_tokenizer_load_from_memory(const char *vocab_json, size_t vocab_len,
							  const char *merges_txt, size_t merges_len,
							  cm_error *err)
{
	cm_tokenizer *tok;

	if ((vocab_json == NULL && vocab_len > 0) || (merges_txt == NULL && merges_len > 0))
	{
		cm_set_error(err, CM_ERR_INPUT, "tokenizer file contents are missing");
		return NULL;
	}
	if (vocab_len > CM_TOKENIZER_MAX_FILE_BYTES || merges_len > CM_TOKENIZER_MAX_FILE_BYTES)
	{
		cm_set_error(err, CM_ERR_MODEL, "%s is larger than the %zu-byte limit",
					 vocab_len > CM_TOKENIZER_MAX_FILE_BYTES ? "vocab.json" : "merges.txt",
					 CM_TOKENIZER_MAX_FILE_BYTES);
		return NULL;
	}
	tok = calloc(1, sizeof(*tok));
	if (tok == NULL)
	{
		cm_set_error(err, CM_ERR_NOMEM, "out of memory loading the tokenizer");
		return NULL;
	}
	if (load_vocab(tok, vocab_json, vocab_len, err) != CM_OK)
		goto fail;
	tok->bos_id = vocab_find(tok, BOS_STRING, strlen(BOS_STRING));
	tok->eos_id = vocab_find(tok, EOS_STRING, strlen(EOS_STRING));
	if (tok->bos_id < 0 || tok->eos_id < 0)
	{
		cm_set_error(err, CM_ERR_MODEL, "vocab.json has no \"%s\" token",
					 tok->bos_id < 0 ? BOS_STRING : EOS_STRING);
		goto fail;
	}
	/* CLIP's unknown token is its end-of-text token. */
	tok->unk_id = tok->eos_id;
	load_byte_symbols(tok);
	if (load_merges(tok, merges_txt, merges_len, err) != CM_OK)
		goto fail;
	return tok;

fail:
	cm_tokenizer_free(tok);
	return NULL;
}

/*
 * open_clip's SimpleTokenizer vocabulary, from the text of its merges file:
 * the 256 byte symbols (GPT-2's printable bytes first, then the others, each
 * in byte order), the same with "</w>", each merge line's parts joined, then
 * "<start_of_text>" and "<end_of_text>".  A merge line is split as Python's
 * str.split() does; only lines of two parts are merges.  As in the
 * reference's dict, a string listed twice takes its last id.
 */
static cm_status
load_openclip_vocab(cm_tokenizer *tok, const char *text, size_t len, cm_error *err)
{
	size_t		n_lines = 0,
				n,
				arena,
				used = 0,
				slots,
				pos;
	const char *body;
	size_t		body_len;
	int32_t		id = 0;

	/*
	 * The lines SimpleTokenizer reads: split('\n')[1 : 1 + OPENCLIP_MAX_MERGES],
	 * one per newline after the first line, up to the maximum.
	 */
	body = memchr(text, '\n', len);
	body = body ? body + 1 : text + len;
	body_len = (size_t) (text + len - body);
	for (size_t i = 0; i < len; i++)
		n_lines += text[i] == '\n';
	if (n_lines > OPENCLIP_MAX_MERGES)
		n_lines = OPENCLIP_MAX_MERGES;
	n = 512 + n_lines + 2;
	/* byte symbols take at most 2 + 4 bytes, a joined merge no more than its line */
	arena = 512 * 6 + body_len + n + 64;
	if (!cm_hash_table_size(n, &slots) || arena >= UNSET_OFFSET)
		return cm_set_error(err, CM_ERR_MODEL, "the BPE merges file is too large");
	tok->n_vocab = (int32_t) n;
	tok->strings = malloc(arena);
	tok->string_offset = malloc(n * sizeof(uint32_t));
	tok->string_length = malloc(n * sizeof(uint32_t));
	tok->vocab_slots = malloc(slots * sizeof(int32_t));
	if (!tok->strings || !tok->string_offset || !tok->string_length || !tok->vocab_slots)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory loading the BPE merges file");
	tok->vocab_mask = slots - 1;
	memset(tok->vocab_slots, 0xff, slots * sizeof(int32_t));

#define ADD_STRING(src, srclen) \
	do { \
		memcpy(tok->strings + used, (src), (srclen)); \
		tok->strings[used + (srclen)] = '\0'; \
		tok->string_offset[id] = (uint32_t) used; \
		tok->string_length[id] = (uint32_t) (srclen); \
		used += (srclen) + 1; \
		if ((srclen) > tok->longest_token) \
			tok->longest_token = (srclen); \
		vocab_insert_last(tok, id); \
		id++; \
	} while (0)

	for (int end = 0; end < 2; end++)
		for (int printable = 1; printable >= 0; printable--)
			for (int b = 0; b < 256; b++)
			{
				int32_t		cp = cm_bpe_byte_char((unsigned char) b);
				char		sym[8];
				size_t		k = (size_t) utf8proc_encode_char(cp, (utf8proc_uint8_t *) sym);

				if ((cp == b) != (printable == 1))
					continue;
				if (end)
				{
					memcpy(sym + k, WORD_END_SUFFIX, strlen(WORD_END_SUFFIX));
					k += strlen(WORD_END_SUFFIX);
				}
				ADD_STRING(sym, k);
			}

	pos = 0;
	for (size_t line = 0; line < n_lines; line++)
	{
		const char *l = body + pos;
		const char *nl = memchr(l, '\n', body_len - pos);
		size_t		ll = nl ? (size_t) (nl - l) : body_len - pos;
		size_t		start = used,
					parts = 0,
					split = 0;

		pos += ll + 1;
		for (size_t i = 0; i < ll;)
		{
			int32_t		cp;
			size_t		k = cm_tok_utf8_decode((const uint8_t *) l + i, ll - i, &cp);

			if (cm_is_python_space(cp))
			{
				i += k;
				continue;
			}
			if (parts == 1 && split == 0)
				split = used - start;
			parts++;
			while (i < ll)
			{
				k = cm_tok_utf8_decode((const uint8_t *) l + i, ll - i, &cp);
				if (cm_is_python_space(cp))
					break;
				memcpy(tok->strings + used, l + i, k);
				used += k;
				i += k;
			}
		}
		{
			size_t		joined = used - start;

			used = start;
			ADD_STRING(tok->strings + start, joined);
			if (parts == 2)
			{
				int32_t		left = vocab_find(tok, tok->strings + start, split);
				int32_t		right = vocab_find(tok, tok->strings + start + split, joined - split);

				/* a merge of strings that are not symbols can never apply */
				if (left >= 0 && right >= 0)
					cm_bpe_merges_add(&tok->merges, left, right, id - 1);
			}
		}
	}
	ADD_STRING(OPENCLIP_BOS_STRING, strlen(OPENCLIP_BOS_STRING));
	ADD_STRING(OPENCLIP_EOS_STRING, strlen(OPENCLIP_EOS_STRING));
#undef ADD_STRING
	return CM_OK;
}

cm_tokenizer *
cm_tokenizer_load_openclip(const char *merges, size_t len, bool lower, cm_error *err)
{
	cm_tokenizer *tok;
	size_t		bad = 0;

	if (merges == NULL && len > 0)
	{
		cm_set_error(err, CM_ERR_INPUT, "BPE merges text is missing");
		return NULL;
	}
	if (len > CM_TOKENIZER_MAX_FILE_BYTES)
	{
		cm_set_error(err, CM_ERR_MODEL, "the BPE merges file is larger than the %zu-byte limit",
					 CM_TOKENIZER_MAX_FILE_BYTES);
		return NULL;
	}
	if (!cm_tok_utf8_valid((const uint8_t *) merges, len, &bad))
	{
		cm_set_error(err, CM_ERR_MODEL, "the BPE merges file is not valid UTF-8 (byte %zu)", bad);
		return NULL;
	}
	tok = calloc(1, sizeof(*tok));
	if (tok == NULL)
	{
		cm_set_error(err, CM_ERR_NOMEM, "out of memory loading the tokenizer");
		return NULL;
	}
	tok->openclip = true;
	tok->clean_lower = lower;
	if (cm_bpe_merges_init(&tok->merges, OPENCLIP_MAX_MERGES, err) != CM_OK ||
		load_openclip_vocab(tok, merges, len, err) != CM_OK)
	{
		cm_tokenizer_free(tok);
		return NULL;
	}
	tok->bos_id = vocab_find(tok, OPENCLIP_BOS_STRING, strlen(OPENCLIP_BOS_STRING));
	tok->eos_id = vocab_find(tok, OPENCLIP_EOS_STRING, strlen(OPENCLIP_EOS_STRING));
	tok->unk_id = tok->eos_id;	/* every byte has its symbol: never used */
	load_byte_symbols(tok);
	return tok;
}

static cm_status
read_small_file(const char *path, const char *what, char **data, size_t *len,
				cm_error *err)
{
	struct stat st;
	int			fd;
	size_t		got = 0;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		int			e = errno;
		cm_status	s = cm_set_error(err, CM_ERR_IO, "cannot open %s \"%s\": %s", what, path,
									 strerror(e));

		if (e == ENOENT)
			cm_error_set_missing(err, path);
		return s;
	}
	if (fstat(fd, &st) != 0)
	{
		int			e = errno;

		close(fd);
		return cm_set_error(err, CM_ERR_IO, "cannot stat %s \"%s\": %s", what, path,
							strerror(e));
	}
	if (!S_ISREG(st.st_mode))
	{
		close(fd);
		return cm_set_error(err, CM_ERR_IO, "%s \"%s\" is not a regular file", what, path);
	}
	if ((uint64_t) st.st_size > CM_TOKENIZER_MAX_FILE_BYTES)
	{
		close(fd);
		return cm_set_error(err, CM_ERR_MODEL,
							"%s \"%s\" is %lld bytes, more than the %zu-byte limit",
							what, path, (long long) st.st_size, CM_TOKENIZER_MAX_FILE_BYTES);
	}
	*data = malloc((size_t) st.st_size + 1);
	if (*data == NULL)
	{
		close(fd);
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory reading %s", what);
	}
	while (got < (size_t) st.st_size)
	{
		ssize_t		r = read(fd, *data + got, (size_t) st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
		{
			int			e = errno;

			close(fd);
			free(*data);
			*data = NULL;
			return cm_set_error(err, CM_ERR_IO, "cannot read %s \"%s\": %s", what, path,
								r == 0 ? "file shrank while reading" : strerror(e));
		}
		got += (size_t) r;
	}
	close(fd);
	*len = got;
	return CM_OK;
}

cm_tokenizer *
cm_tokenizer_load(const char *vocab_path, const char *merges_path, cm_error *err)
{
	char	   *vocab = NULL;
	char	   *merges = NULL;
	size_t		vocab_len,
				merges_len;
	cm_tokenizer *tok = NULL;

	if (vocab_path == NULL || merges_path == NULL)
	{
		cm_set_error(err, CM_ERR_INPUT, "tokenizer file paths are missing");
		return NULL;
	}
	if (read_small_file(vocab_path, "vocab.json", &vocab, &vocab_len, err) == CM_OK &&
		read_small_file(merges_path, "merges.txt", &merges, &merges_len, err) == CM_OK)
		tok = cm_tokenizer_load_from_memory(vocab, vocab_len, merges, merges_len, err);
	free(vocab);
	free(merges);
	return tok;
}

void
cm_tokenizer_free(cm_tokenizer *tok)
{
	if (tok == NULL)
		return;
	free(tok->strings);
	free(tok->string_offset);
	free(tok->string_length);
	free(tok->vocab_slots);
	cm_bpe_merges_free(&tok->merges);
	free(tok);
}

int32_t
cm_tokenizer_bos_id(const cm_tokenizer *tok)
{
	return tok->bos_id;
}

int32_t
cm_tokenizer_eos_id(const cm_tokenizer *tok)
{
	return tok->eos_id;
}

int32_t
cm_tokenizer_vocab_size(const cm_tokenizer *tok)
{
	return tok->n_vocab;
}

/* ---------------------------------------------------------------- encoding */

/* Everything one encode call needs; nothing is shared between calls. */
typedef struct encode_state
{
	const cm_tokenizer *tok;
	int32_t    *out;			/* content ids go to out[0 .. limit) */
	size_t		n_out;
	size_t		limit;

	cm_tok_codepoints text;		/* one normalised segment */
	uint8_t    *bytes;			/* one pre-token's UTF-8 */
	size_t		bytes_cap;
	int32_t    *sym_id;			/* BPE symbols of one pre-token */
	size_t		sym_cap;
	cm_bpe_work bpe;
} encode_state;

static void
encode_state_free(encode_state *st)
{
	cm_tok_codepoints_free(&st->text);
	free(st->bytes);
	free(st->sym_id);
	cm_bpe_work_free(&st->bpe);
}

static bool
grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t		new_cap = *cap < 64 ? 64 : *cap;
	size_t		bytes;
	void	   *q;

	if (need <= *cap)
		return true;
	while (new_cap < need)
	{
		if (!cm_mul_size(new_cap, 2, &new_cap))
			return false;
	}
	if (!cm_mul_size(new_cap, elem, &bytes) || (q = realloc(*p, bytes)) == NULL)
		return false;
	*p = q;
	*cap = new_cap;
	return true;
}

static bool
output_full(const encode_state *st)
{
	return st->n_out >= st->limit;
}

static void
emit(encode_state *st, int32_t id)
{
	if (st->n_out < st->limit)
		st->out[st->n_out++] = id;
}

/*
 * BPE over one pre-token: its byte symbols ("</w>" on the last one at a
 * word's end), merged by rank (bpe.c).
 */
static cm_status
bpe_word(encode_state *st, const uint8_t *bytes, size_t n, bool word_end, cm_error *err)
{
	const cm_tokenizer *tok = st->tok;
	size_t		left;
	cm_status	status;

	if (n == 0)
		return CM_OK;
	if (!grow((void **) &st->sym_id, &st->sym_cap, n, sizeof(int32_t)))
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
	for (size_t i = 0; i < n; i++)
		st->sym_id[i] = (i + 1 == n && word_end) ? tok->byte_end_id[bytes[i]]
			: tok->byte_id[bytes[i]];
	status = cm_bpe_merge(&tok->merges, &st->bpe, st->sym_id, n, &left, err);
	if (status != CM_OK)
		return status;
	for (size_t i = 0; i < left && !output_full(st); i++)
		emit(st, st->sym_id[i]);
	return CM_OK;
}

/*
 * Pre-tokenise and BPE the code points in st->text.  HF CLIP: a special
 * literal found here only became one through lower-casing, and the
 * reference's byte-level step splits it again into "<|", the name and "|>".
 * open_clip: it is the special token.
 */
static cm_status
encode_codepoints(encode_state *st, bool cut_at_end, cm_error *err)
{
	const cm_tok_pattern openclip_pattern = {{OPENCLIP_BOS_STRING, OPENCLIP_EOS_STRING}, true};
	const cm_tok_pattern *pat = st->tok->openclip ? &openclip_pattern : &cm_tok_clip_pattern;
	size_t		pos = 0,
				start,
				count;
	int			special;
	cm_status	status;

	while (!output_full(st) &&
		   cm_tok_next_pretoken(st->text.cp, st->text.len, &pos, &start, &count, pat, &special))
	{
		size_t		need,
					n = 0;

		if (special >= 0 && st->tok->openclip)
		{
			emit(st, special == 0 ? st->tok->bos_id : st->tok->eos_id);
			continue;
		}
		if (!cm_mul_size(count, 4, &need) ||
			!grow((void **) &st->bytes, &st->bytes_cap, need, 1))
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
		for (size_t i = 0; i < count; i++)
			n += (size_t) utf8proc_encode_char(st->text.cp[start + i], st->bytes + n);

		/*
		 * A pre-token cut by the window has no known end, so it gets no
		 * "</w>"; it lies far past the ids that are kept anyway.
		 */
		if (special >= 0)
		{
			status = bpe_word(st, st->bytes, 2, true, err);
			if (status == CM_OK)
				status = bpe_word(st, st->bytes + 2, n - 4, true, err);
			if (status == CM_OK)
				status = bpe_word(st, st->bytes + n - 2, 2, true, err);
		}
		else
			status = bpe_word(st, st->bytes, n,
							  !(cut_at_end && start + count == st->text.len), err);
		if (status != CM_OK)
			return status;
	}
	return CM_OK;
}

/* Normalise, pre-tokenise and BPE one stretch of text without specials. */
static cm_status
encode_segment(encode_state *st, const uint8_t *s, size_t len, bool cut_at_end,
			   cm_error *err)
{
	cm_status	status = cm_tok_normalize(s, len, &st->text, err);

	if (status != CM_OK)
		return status;
	return encode_codepoints(st, cut_at_end, err);
}

/* Length of a special token starting at s, and its id; 0 if none. */
static size_t
special_at(const cm_tokenizer *tok, const uint8_t *s, size_t len, int32_t *id)
{
	static const size_t bos_len = sizeof(BOS_STRING) - 1;
	static const size_t eos_len = sizeof(EOS_STRING) - 1;

	if (len >= bos_len && memcmp(s, BOS_STRING, bos_len) == 0)
	{
		*id = tok->bos_id;
		return bos_len;
	}
	if (len >= eos_len && memcmp(s, EOS_STRING, eos_len) == 0)
	{
		*id = tok->eos_id;
		return eos_len;
	}
	return 0;
}

/* One whitespace-free chunk: split around literal special tokens. */
static cm_status
encode_chunk(encode_state *st, const uint8_t *s, size_t len, bool cut_at_end,
			 cm_error *err)
{
	size_t		seg = 0;

	while (!output_full(st))
	{
		size_t		at = seg;
		size_t		special_len = 0;
		int32_t		special_id = -1;

		/* the next special token at or after seg, else at = len */
		for (;;)
		{
			const uint8_t *lt = memchr(s + at, '<', len - at);

			if (lt == NULL)
			{
				at = len;
				break;
			}
			at = (size_t) (lt - s);
			special_len = special_at(st->tok, s + at, len - at, &special_id);
			if (special_len > 0)
				break;
			at++;
		}
		if (at > seg)
		{
			cm_status	status = encode_segment(st, s + seg, at - seg,
												cut_at_end && at == len, err);

			if (status != CM_OK)
				return status;
		}
		if (special_len == 0)
			break;
		emit(st, special_id);
		seg = at + special_len;
	}
	return CM_OK;
}

/* How far one whitespace-free run is read: far beyond the ids it can yield. */
static size_t
window_bytes(const cm_tokenizer *tok, int max_ids)
{
	size_t		longest = tok->longest_token < 16 ? 16 : tok->longest_token;
	size_t		w;

	if (longest > 4096)
		longest = 4096;
	if (!cm_mul_size((size_t) max_ids, longest * 8, &w))
		return SIZE_MAX;
	return w < MIN_WINDOW_BYTES ? MIN_WINDOW_BYTES : w;
}

/*
 * open_clip: clean the text (at most window bytes of it: far more than the
 * ids kept can come from, unless it is nearly all whitespace or markup),
 * then pre-tokenise and BPE each space-separated chunk of the clean text.
 */
static cm_status
encode_openclip(encode_state *st, const uint8_t *s, size_t len, size_t window, cm_error *err)
{
	bool		cut = len > window;
	char	   *clean;
	size_t		n;
	cm_status	status;

	if (cut)
	{
		len = window;
		while (len > 0 && (s[len] & 0xC0) == 0x80)
			len--;
	}
	status = cm_clean_text_openclip((const char *) s, len, st->tok->clean_lower, &clean, &n, err);
	if (status != CM_OK)
		return status;
	for (size_t pos = 0; pos < n && status == CM_OK && !output_full(st);)
	{
		const char *sp = memchr(clean + pos, ' ', n - pos);
		size_t		end = sp ? (size_t) (sp - clean) : n;

		st->text.len = 0;
		while (pos < end)
		{
			int32_t		cp;

			pos += cm_tok_utf8_decode((const uint8_t *) clean + pos, end - pos, &cp);
			if (!grow((void **) &st->text.cp, &st->text.cap, st->text.len + 1, sizeof(int32_t)))
			{
				free(clean);
				return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
			}
			st->text.cp[st->text.len++] = cp;
		}
		status = encode_codepoints(st, cut && end == n, err);
		pos = end + 1;
	}
	free(clean);
	return status;
}

cm_status
cm_tokenizer_encode(const cm_tokenizer *tok, const char *text, size_t len,
					int32_t *ids, int max_ids, int *n_ids, cm_error *err)
{
	const uint8_t *s = (const uint8_t *) text;
	encode_state st;
	size_t		bad_offset = 0;
	size_t		window;
	size_t		pos = 0;
	cm_status	status = CM_OK;

	if (n_ids != NULL)
		*n_ids = 0;
	if (tok == NULL || ids == NULL || n_ids == NULL || (text == NULL && len > 0))
		return cm_set_error(err, CM_ERR_INPUT, "tokenizer, text or output is missing");
	if (max_ids < 2)
		return cm_set_error(err, CM_ERR_INPUT,
							"max_ids is %d; room for at least BOS and EOS is needed",
							max_ids);
	if (!cm_tok_utf8_valid(s, len, &bad_offset))
		return cm_set_error(err, CM_ERR_INPUT,
							"text is not valid UTF-8: bad byte 0x%02X at byte offset %zu",
							s[bad_offset], bad_offset);

	memset(&st, 0, sizeof(st));
	st.tok = tok;
	st.out = ids + 1;
	st.limit = (size_t) max_ids - 2;
	window = window_bytes(tok, max_ids);

	if (tok->openclip)
		status = encode_openclip(&st, s, len, window, err);
	while (!tok->openclip && pos < len && !output_full(&st))
	{
		int32_t		cp;
		size_t		n = cm_tok_utf8_decode(s + pos, len - pos, &cp);
		size_t		start = pos;
		bool		cut = false;

		if (cm_tok_is_space(cp))
		{
			pos += n;
			continue;
		}
		while (pos < len)
		{
			n = cm_tok_utf8_decode(s + pos, len - pos, &cp);
			if (cm_tok_is_space(cp))
				break;
			if (pos + n - start > window)
			{
				cut = true;
				break;
			}
			pos += n;
		}
		status = encode_chunk(&st, s + start, pos - start, cut, err);
		if (status != CM_OK || cut)
			break;
	}
	encode_state_free(&st);
	if (status != CM_OK)
		return status;

	ids[0] = tok->bos_id;
	ids[1 + st.n_out] = tok->eos_id;
	*n_ids = (int) st.n_out + 2;
	return CM_OK;
}
