/*
 * cm_common.h
 *	  Status codes, caller-owned error messages and checked arithmetic shared
 *	  by every part of the encoder runtime.  Plain C: no PostgreSQL headers.
 */
#ifndef CM_COMMON_H
#define CM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum cm_status
{
	CM_OK = 0,
	CM_ERR_IO,					/* a file could not be opened, read or mapped */
	CM_ERR_MODEL,				/* a model file is malformed or inconsistent */
	CM_ERR_UNSUPPORTED,			/* valid, but a feature this runtime lacks */
	CM_ERR_INPUT,				/* the caller's text or image bytes are invalid */
	CM_ERR_LIMIT,				/* the input exceeds a limit the caller set */
	CM_ERR_NOMEM,				/* an allocation failed */
	CM_ERR_CANCELLED			/* the caller's cancel callback asked to stop */
} cm_status;

#define CM_ERROR_MESSAGE_LEN 512
#define CM_MAX_PATH 4096		/* bytes of a model file's path, NUL included */

/* Which limit a CM_ERR_LIMIT failure hit, for callers that name settings. */
typedef enum cm_limit_kind
{
	CM_LIMIT_NONE = 0,
	CM_LIMIT_IMAGE_BYTES,		/* cm_run_options.max_image_bytes */
	CM_LIMIT_IMAGE_PIXELS,		/* cm_run_options.max_image_pixels */
	CM_LIMIT_IMAGE_SIDE,		/* the fixed largest side of a decoded image */
	CM_LIMIT_OTHER
} cm_limit_kind;

/*
 * Filled in by the runtime on failure; owned by the caller (stack is fine).
 * Besides the message, the facts a caller may act on are data: the file a
 * model directory lacks (CM_ERR_IO), the limit an input exceeds
 * (CM_ERR_LIMIT).
 */
typedef struct cm_error
{
	cm_status	status;
	char		message[CM_ERROR_MESSAGE_LEN];
	cm_limit_kind limit;		/* CM_LIMIT_NONE unless set */
	char		missing_file[CM_MAX_PATH];	/* "" unless a required file is absent */
} cm_error;

/* Record a failure in err (which may be NULL) and return the status. */
cm_status	cm_set_error(cm_error *err, cm_status status, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* After cm_set_error: the failure is the absence of the file at path. */
void		cm_error_set_missing(cm_error *err, const char *path);

/* After cm_set_error: which limit was exceeded. */
void		cm_error_set_limit(cm_error *err, cm_limit_kind kind);

/* buf[CM_MAX_PATH] = dir/file; CM_ERR_IO when it does not fit. */
cm_status	cm_join_path(char *buf, const char *dir, const char *file, cm_error *err);

/* Overflow-checked size arithmetic: false when the result does not fit. */
static inline bool
cm_mul_size(size_t a, size_t b, size_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

static inline bool
cm_add_size(size_t a, size_t b, size_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

#endif							/* CM_COMMON_H */
