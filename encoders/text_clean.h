/*
 * text_clean.h
 *	  The text cleaning open_clip's SimpleTokenizer applies before
 *	  tokenizing (private to the tokenizers).
 */
#ifndef CM_TEXT_CLEAN_H
#define CM_TEXT_CLEAN_H

#include "cm_common.h"

/*
 * SimpleTokenizer's clean_fn on valid UTF-8 text[0..len): basic_clean
 * (ftfy.fix_text, html.unescape twice, strip), whitespace_clean (every
 * Python \s run becomes one space, strip), then, when lower is set ("lower",
 * open_clip's default), Python's str.lower().
 *
 * ftfy.fix_text is reproduced with its default configuration except one
 * step: the repair of text decoded with the wrong codec (fix_encoding, a
 * statistical heuristic) is not done, so mojibake such as "cafÃ©" stays as
 * it is where ftfy would make it "café".  Everything else is: per line, and
 * repeated until nothing changes, HTML entities unescaped (ftfy's strict
 * rule, off from the first line that contains "<"), C1 controls read as
 * Windows-1252, Latin ligatures split, full- and half-width forms and
 * U+3000 mapped to their normal forms, curly quotes straightened, line
 * breaks unified, terminal escape sequences and control characters removed,
 * NFC.  A line is cleaned in at most CM_CLEAN_MAX_ROUNDS rounds (ftfy has no
 * limit; only nested entities need more than a few).
 *
 * *out receives a malloc'd UTF-8 string (not NUL-terminated), *out_len its
 * length.  CM_ERR_NOMEM on allocation failure.
 */
cm_status	cm_clean_text_openclip(const char *text, size_t len, bool lower,
								   char **out, size_t *out_len, cm_error *err);

#define CM_CLEAN_MAX_ROUNDS 16

/* Python's str.isspace(): what re's \s and str.strip() and split() use. */
bool		cm_is_python_space(int32_t cp);

#endif							/* CM_TEXT_CLEAN_H */
