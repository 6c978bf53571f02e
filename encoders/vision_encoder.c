/*
 * vision_encoder.c
 *	  CLIP's vision tower: patch embedding as one GEMM over im2col rows,
 *	  class and position embeddings, pre layer norm, transformer, post layer
 *	  norm on the class token and the visual projection.
 */
#include "transformer.h"

#include <string.h>

/*
 * Unfold the stride-p convolution's input: row (image, gy, gx) holds the
 * patch's pixels in the weight's [channel][ky][kx] order.
 */
static void
im2col(const float *pixels, int n, int size, int patch, int grid, float *cols)
{
	size_t		plane = (size_t) size * size;
	size_t		k = (size_t) 3 * patch * patch;

	for (int b = 0; b < n; b++)
	{
		const float *img = pixels + (size_t) b * 3 * plane;

		for (int gy = 0; gy < grid; gy++)
			for (int gx = 0; gx < grid; gx++)
			{
				float	   *row = cols + ((size_t) b * grid * grid + (size_t) gy * grid + gx) * k;

				for (int c = 0; c < 3; c++)
					for (int ky = 0; ky < patch; ky++)
						memcpy(row + ((size_t) c * patch + ky) * patch,
							   img + c * plane + (size_t) (gy * patch + ky) * size + (size_t) gx * patch,
							   (size_t) patch * sizeof(float));
			}
	}
}

cm_status
cm_vision_forward(const cm_model *model, cm_state *s, const float *pixels, int n,
				  const cm_run_options *opt, float *out, cm_error *err)
{
	const cm_vision_config *vc = &model->config.vision;
	const cm_vision_weights *w = &model->w.vision;
	int			d = vc->t.hidden_size;
	int			grid = vc->grid;
	int			n_patches = grid * grid;
	int			tokens = vc->n_positions;
	int			k = 3 * vc->patch_size * vc->patch_size;
	size_t		rows,
				patch_floats;
	cm_batch	batch;
	cm_gemm_team team;
	cm_status	st;

	if (!cm_mul_size((size_t) n, (size_t) tokens, &rows) || rows > (size_t) INT32_MAX ||
		!cm_mul_size((size_t) n * n_patches, (size_t) k, &patch_floats))
		return cm_set_error(err, CM_ERR_LIMIT, "batch of %d images is too large", n);
	if ((st = cm_state_reserve_seqs(s, (size_t) n, err)) != CM_OK)
		return st;
	for (int i = 0; i < n; i++)
	{
		s->seq_start[i] = i * tokens;
		s->seq_len[i] = tokens;
		s->keep_rows[i] = i * tokens;	/* the class token */
	}
	batch.n_seqs = n;
	batch.n_rows = (int) rows;
	batch.max_len = tokens;
	batch.start = s->seq_start;
	batch.len = s->seq_len;
	batch.keep = s->keep_rows;
	batch.n_keep = n;
	if ((st = cm_state_reserve_tower(s, &vc->t, &batch, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->patches, patch_floats, err)) != CM_OK)
		return st;
	if ((st = cm_check_cancel(opt, err)) != CM_OK)
		return st;
	cm_forward_team_start(s, &team);

	/* Patch embedding: [n * grid^2][3 p p] x W^T -> s->q as scratch. */
	im2col(pixels, n, vc->image_size, vc->patch_size, grid, s->patches.p);
	cm_linear(s->team, s->patches.p, n * n_patches, k, w->patch_embedding, NULL, s->q.p, d, false);

	for (int b = 0; b < n; b++)
	{
		float	   *x = s->x.p + (size_t) b * tokens * d;

		for (int c = 0; c < d; c++)
			x[c] = w->class_embedding[c] + w->position_embedding[c];
		for (int p = 0; p < n_patches; p++)
		{
			float	   *xr = x + (size_t) (1 + p) * d;
			const float *pe = s->q.p + ((size_t) b * n_patches + p) * d;
			const float *pos = w->position_embedding + (size_t) (1 + p) * d;

			for (int c = 0; c < d; c++)
				xr[c] = pe[c] + pos[c];
		}
	}
	cm_layer_norm(s->x.p, s->x.p, (int) rows, d, w->pre_ln_w, w->pre_ln_b, vc->t.layer_norm_eps);

	if ((st = cm_transformer_forward(&vc->t, w->layers, s, &batch, false, opt, err)) != CM_OK)
	{
		cm_forward_team_stop(s);
		return st;
	}

	/* After the last layer the class tokens are rows 0 .. n-1 (batch.keep). */
	cm_layer_norm(s->x.p, s->pooled.p, n, d, w->post_ln_w, w->post_ln_b, vc->t.layer_norm_eps);
	cm_linear(s->team, s->pooled.p, n, d, w->projection, NULL, out, model->config.projection_dim, false);
	cm_forward_team_stop(s);
	return CM_OK;
}
