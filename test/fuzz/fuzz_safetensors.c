/*
 * fuzz_safetensors.c
 *	  libFuzzer target: arbitrary bytes as a .safetensors file, read from
 *	  memory; every tensor the reader accepts is looked up and widened.
 */
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* malloc's alignment stands in for the page-aligned mapping. */
	unsigned char *buf = malloc(size > 0 ? size : 1);
	cm_error	err;
	cm_safetensors *st;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	st = cm_safetensors_from_memory(buf, size, &err);
	if (st != NULL)
	{
		for (int i = 0; i < cm_safetensors_count(st); i++)
		{
			const cm_tensor_view *t = cm_safetensors_at(st, i);
			float	   *out;

			if (cm_safetensors_find(st, t->name) != t)
				abort();		/* names are unique and searchable */
			if ((const unsigned char *) t->data < buf ||
				(const unsigned char *) t->data + t->nbytes > buf + size)
				abort();		/* every view lies inside the buffer */
			if (t->dtype == CM_DTYPE_OTHER || t->n_elements > (1 << 20))
				continue;
			out = malloc((size_t) t->n_elements * sizeof(float) + 1);
			if (out != NULL && cm_tensor_to_f32(t, out, &err) != CM_OK)
				abort();
			free(out);
		}
		cm_safetensors_close(st);
	}
	else if (err.message[0] == '\0')
		abort();				/* every failure explains itself */
	free(buf);
	return 0;
}
