/*
 * test_public_header.c
 *	  The public header stands on its own: this file includes nothing else
 *	  of the runtime, and the header is also compiled here, through the
 *	  system compiler, as strict C99, C11 and C++ with -pedantic -Werror.
 */
#include "crossmodal_encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	passed,
			failed;

#define CHECK(cond, ...) \
	do { \
		if (cond) \
			passed++; \
		else \
		{ \
			failed++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* A program that uses every declaration of the header. */
static const char probe[] =
	"#include \"crossmodal_encoder.h\"\n"
	"static bool stop(void *c) { (void) c; return false; }\n"
	"static void log_it(void *c, int l, const char *m) { (void) c; (void) l; (void) m; }\n"
	"int main(void) {\n"
	"  cm_error err; cm_load_options lo; cm_run_options ro; cm_model_info info;\n"
	"  cm_model *m; cm_state *s; float out[4]; int32_t ids[4]; int n;\n"
	"  const char *texts[1]; const unsigned char *imgs[1]; size_t lens[1];\n"
	"  memset(&lo, 0, sizeof lo); memset(&ro, 0, sizeof ro);\n"
	"  lo.log = log_it; ro.cancel = stop; ro.max_image_pixels = CM_DEFAULT_MAX_IMAGE_PIXELS;\n"
	"  texts[0] = \"x\"; imgs[0] = (const unsigned char *) \"x\"; lens[0] = 1;\n"
	"  m = cm_model_load(\"/nonexistent\", &lo, &err);\n"
	"  if (m == NULL) return err.status == CM_ERR_IO ? 0 : 1;\n"
	"  cm_model_get_info(m, &info); s = cm_state_new(m, &err);\n"
	"  (void) cm_encode_texts(m, s, texts, NULL, 1, &ro, out, &err);\n"
	"  (void) cm_encode_images(m, s, imgs, lens, 1, &ro, out, &err);\n"
	"  (void) cm_tokenize(m, \"x\", 1, ids, 4, &n, &err);\n"
	"  (void) cm_preprocess_image(m, imgs[0], 1, &ro, out, &err);\n"
	"  (void) cm_encode_pixels(m, s, out, 0, &ro, out, &err);\n"
	"  cm_set_num_threads(cm_get_num_threads()); (void) cm_status_name(CM_OK);\n"
	"  cm_state_free(s); cm_model_free(m); return 0;\n"
	"}\n";

static int
compile_probe(const char *compiler, const char *lang, const char *std, const char *extra)
{
	char		cmd[1024];
	const char *cc = getenv("CC");
	FILE	   *p;

	if (compiler == NULL)
		compiler = (cc != NULL && *cc != '\0') ? cc : "cc";
	snprintf(cmd, sizeof(cmd),
			 "%s -x %s -std=%s -pedantic -Wall -Wextra -Werror %s -Iencoders -include string.h "
			 "-fsyntax-only - 2>&1", compiler, lang, std, extra);
	p = popen(cmd, "w");
	if (p == NULL)
		return -1;
	fputs(probe, p);
	return pclose(p);
}

int
main(void)
{
	cm_run_options opt;
	cm_error	err;
	cm_model   *m;

	/* Zeroed options are the documented defaults. */
	memset(&opt, 0, sizeof(opt));
	CHECK(opt.cancel == NULL && opt.batch_size == 0 && !opt.raw_features, "zeroed options");
	CHECK(CM_DEFAULT_BATCH > 0 && CM_DEFAULT_BATCH <= CM_MAX_BATCH, "batch defaults");
	CHECK(strcmp(cm_status_name(CM_ERR_CANCELLED), "cancelled") == 0, "status name");
	CHECK(strcmp(cm_status_name((cm_status) 99), "unknown status") == 0, "unknown status name");

	/* Errors come back as values, in the caller's cm_error. */
	memset(&err, 0, sizeof(err));
	m = cm_model_load("/nonexistent/dir", NULL, &err);
	CHECK(m == NULL && err.status == CM_ERR_IO && strstr(err.message, "/nonexistent/dir") != NULL,
		  "load error reported: %d %s", err.status, err.message);
	CHECK(cm_model_load("/nonexistent/dir", NULL, NULL) == NULL, "NULL err is allowed");

	CHECK(compile_probe(NULL, "c", "c99", "") == 0, "header compiles as -std=c99 -pedantic");
	CHECK(compile_probe(NULL, "c", "c11", "-Wstrict-prototypes -Wmissing-prototypes") == 0,
		  "header compiles as -std=c11 -pedantic");
	CHECK(compile_probe("c++", "c++", "c++11", "") == 0, "header compiles as C++11 -pedantic");

	printf("test_public_header: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
