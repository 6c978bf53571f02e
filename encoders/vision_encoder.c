/*
 * vision_encoder.c
 *	  The vision tower: patch embedding as one GEMM over im2col rows, class
 *	  token (CLIP, OpenCLIP) and position embeddings, pre layer norm (CLIP,
 *	  OpenCLIP), transformer, post layer norm, then either the class token
 *	  through the visual projection (CLIP, OpenCLIP) or SigLIP's multi-head
 *	  attention pooling over every token.
 */
#include "transformer.h"

#include <math.h>
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

/*
 * SigLIP's attention-pooling head over the post-normed tokens of n images
 * in s->x (tokens rows each): one learned query (the probe) attends to every
 * token with the head's own projections, then out_proj, then the residual
 * MLP half of a layer, as SiglipMultiheadAttentionPoolingHead computes
 * probe -> MultiheadAttention(probe, x, x) -> h + mlp(layernorm(h)).
 * The n pooled vectors are left in rows 0 .. n-1 of s->x.
 */
static void
map_head(const cm_vision_config *vc, const cm_vision_weights *w, cm_state *s, int n, int tokens)
{
	const cm_layer_weights *hw = &w->head;
	int			d = vc->t.hidden_size;
	int			heads = vc->t.num_heads;
	int			hd = d / heads;
	int			rows = n * tokens;
	float		scale = 1.0f / sqrtf((float) hd);
	cm_lane    *ln = &s->lanes[0];
	float	   *query = s->pooled.p;	/* [d], the same for every image */
	float	   *scores = ln->scores.p;	/* [tokens] */
	cm_mat		xx;

	cm_linear_f32(NULL, CM_GEMM_AUTO, ln, w->probe, 1, d, hw->q_w, hw->q_b, query, d, false);
	xx = cm_linear_input(s->team, s->x.p, rows, d, hw->k_w, ln->xr.p);
	cm_linear(s->team, CM_GEMM_AUTO, xx, rows, d, hw->k_w, hw->k_b, ln->k.p, d, false);
	cm_linear(s->team, CM_GEMM_AUTO, xx, rows, d, hw->v_w, hw->v_b, ln->v.p, d, false);
	for (int b = 0; b < n; b++)
		for (int h = 0; h < heads; h++)
		{
			const float *q = query + (size_t) h * hd;
			float	   *o = ln->attn.p + (size_t) b * d + (size_t) h * hd;

			for (int t = 0; t < tokens; t++)
			{
				const float *k = ln->k.p + ((size_t) b * tokens + t) * d + (size_t) h * hd;
				float		dot = 0.0f;

				for (int c = 0; c < hd; c++)
					dot += q[c] * k[c];
				scores[t] = dot * scale;
			}
			cm_softmax(scores, 1, tokens);
			memset(o, 0, (size_t) hd * sizeof(float));
			for (int t = 0; t < tokens; t++)
			{
				const float *v = ln->v.p + ((size_t) b * tokens + t) * d + (size_t) h * hd;

				for (int c = 0; c < hd; c++)
					o[c] += scores[t] * v[c];
			}
		}
	cm_linear_f32(s->team, CM_GEMM_AUTO, ln, ln->attn.p, n, d, hw->o_w, hw->o_b, s->x.p, d, false);
	cm_mlp_residual(&vc->t, hw, s->team, CM_GEMM_AUTO, ln, s->x.p, n);
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
	int			first_patch = vc->class_token ? 1 : 0;
	int			k = 3 * vc->patch_size * vc->patch_size;
	size_t		rows,
				patch_floats;
	cm_batch	batch;
	cm_team		team;
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
	/* the class tokens alone are pooled; a MAP head reads every token */
	batch.keep = vc->map_head ? NULL : s->keep_rows;
	batch.n_keep = n;
	if ((st = cm_forward_begin(s, &team, err)) != CM_OK)
		return st;
	cm_forward_plan(s, w->layers, &batch);
	if ((st = cm_state_reserve_tower(s, &vc->t, &batch, k, model->precision == CM_PRECISION_BF16,
									 err)) != CM_OK ||
		(st = cm_buf_reserve(&s->patches, patch_floats, err)) != CM_OK ||
		(st = cm_check_cancel(opt, err)) != CM_OK)
	{
		cm_forward_team_stop(s);
		return st;
	}

	/* Patch embedding: [n * grid^2][3 p p] x W^T -> lane 0's q as scratch. */
	im2col(pixels, n, vc->image_size, vc->patch_size, grid, s->patches.p);
	cm_linear_f32(s->team, CM_GEMM_AUTO, &s->lanes[0], s->patches.p, n * n_patches, k, w->patch_embedding,
				  w->patch_bias, s->lanes[0].q.p, d, false);

	for (int b = 0; b < n; b++)
	{
		float	   *x = s->x.p + (size_t) b * tokens * d;

		if (vc->class_token)
			for (int c = 0; c < d; c++)
				x[c] = w->class_embedding[c] + w->position_embedding[c];
		for (int p = 0; p < n_patches; p++)
		{
			float	   *xr = x + (size_t) (first_patch + p) * d;
			const float *pe = s->lanes[0].q.p + ((size_t) b * n_patches + p) * d;
			const float *pos = w->position_embedding + (size_t) (first_patch + p) * d;

			for (int c = 0; c < d; c++)
				xr[c] = pe[c] + pos[c];
		}
	}
	if (vc->pre_norm)
		cm_layer_norm(s->x.p, s->x.p, (int) rows, d, w->pre_ln_w, w->pre_ln_b, vc->t.layer_norm_eps);

	if ((st = cm_transformer_forward(&vc->t, w->layers, s, &batch, false, opt, err)) != CM_OK)
	{
		cm_forward_team_stop(s);
		return st;
	}

	if (vc->map_head)
	{
		cm_layer_norm(s->x.p, s->x.p, (int) rows, d, w->post_ln_w, w->post_ln_b, vc->t.layer_norm_eps);
		map_head(vc, w, s, n, tokens);
		memcpy(out, s->x.p, (size_t) n * d * sizeof(float));
	}
	else
	{
		/* After the last layer the class tokens are rows 0 .. n-1 (batch.keep). */
		cm_layer_norm(s->x.p, s->pooled.p, n, d, w->post_ln_w, w->post_ln_b, vc->t.layer_norm_eps);
		cm_linear_f32(s->team, CM_GEMM_AUTO, &s->lanes[0], s->pooled.p, n, d, w->projection, NULL, out,
					  model->config.projection_dim, false);
	}
	cm_forward_team_stop(s);
	return CM_OK;
}
