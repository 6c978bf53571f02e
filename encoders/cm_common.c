/*
 * cm_common.c
 *	  Error reporting and path helpers for the encoder runtime.
 */
#include "cm_common.h"

#include <stdarg.h>
#include <stdio.h>

cm_status
cm_set_error(cm_error *err, cm_status status, const char *fmt,...)
{
	if (err != NULL)
	{
		va_list		ap;

		err->status = status;
		err->limit = CM_LIMIT_NONE;
		err->missing_file[0] = '\0';
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return status;
}

void
cm_error_set_missing(cm_error *err, const char *path)
{
	if (err != NULL)
		snprintf(err->missing_file, sizeof(err->missing_file), "%s", path);
}

void
cm_error_set_limit(cm_error *err, cm_limit_kind kind)
{
	if (err != NULL)
		err->limit = kind;
}

cm_status
cm_join_path(char *buf, const char *dir, const char *file, cm_error *err)
{
	int			n = snprintf(buf, CM_MAX_PATH, "%s/%s", dir, file);

	if (n < 0 || n >= CM_MAX_PATH)
		return cm_set_error(err, CM_ERR_IO, "%s: model directory path too long", dir);
	return CM_OK;
}
