/*
 * cm_common.c
 *	  Error reporting helpers for the encoder runtime.
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
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return status;
}
