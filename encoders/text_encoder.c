/*
 * text_encoder.c
 *	  The text tower: token + position embeddings, pre-LN transformer at the
 *	  given length (causal for CLIP and OpenCLIP, full attention for
 *	  SigLIP), final layer norm, pooling at one position (the family's rule)
 *	  and the projection (SigLIP's head has a bias).
 */
#include "transformer.h"

#include <string.h>

/*
 * The position a text is pooled at.  CLIPTextTransformer takes the first
 * position holding eos_token_id (position 0 when there is none), or, for
 * configs with eos_token_id == 2 (written before transformers' fix), the
 * argmax of the ids, as open_clip always does; SigLIP the last position.
 */
static int
pool_position(const int32_t *ids, int n, const cm_text_config *tc)
{
	int			pos = 0;

	switch (tc->pooling)
	{
		case CM_POOL_ARGMAX:
			for (int i = 1; i < n; i++)
				if (ids[i] > ids[pos])
					pos = i;	/* first maximum, as torch.argmax */
			return pos;
		case CM_POOL_LAST:
			return n - 1;
		case CM_POOL_FIRST_EOS:
			for (int i = 0; i < n; i++)
				if (ids[i] == tc->eos_token_id)
					return i;
			return 0;
	}
	return 0;
}

cm_status
cm_text_forward(const cm_model *model, cm_state *s,
				const int32_t *const *ids, const int *n_ids, int n,
				const cm_run_options *opt, float *out, float *hidden, cm_error *err)
{
	const cm_text_config *tc = &model->config.text;
	const cm_text_weights *w = &model->w.text;
	int			d = tc->t.hidden_size;
	int			rows = 0,
				max_len = 0;
	cm_batch	batch;
	cm_team		team;
	cm_status	st;

	if ((st = cm_state_reserve_seqs(s, (size_t) n, err)) != CM_OK)
		return st;
	for (int i = 0; i < n; i++)
	{
		if (ids[i] == NULL || n_ids[i] < 1 || n_ids[i] > tc->max_positions)
			return cm_set_error(err, CM_ERR_INPUT, "text %d has %d token ids, expected 1 to %d",
								i, ids[i] == NULL ? 0 : n_ids[i], tc->max_positions);
		for (int j = 0; j < n_ids[i]; j++)
			if (ids[i][j] < 0 || ids[i][j] >= tc->vocab_size)
				return cm_set_error(err, CM_ERR_INPUT, "text %d: token id %d at position %d is outside the vocabulary of %d",
									i, (int) ids[i][j], j, tc->vocab_size);
		s->seq_start[i] = rows;
		s->seq_len[i] = n_ids[i];
		rows += n_ids[i];		/* bounded: n <= CM_MAX_BATCH, each <= max_positions */
		if (n_ids[i] > max_len)
			max_len = n_ids[i];
	}
	batch.n_seqs = n;
	batch.n_rows = rows;
	batch.max_len = max_len;
	batch.start = s->seq_start;
	batch.len = s->seq_len;
	for (int i = 0; i < n; i++)
		s->keep_rows[i] = s->seq_start[i] + pool_position(ids[i], n_ids[i], tc);
	/* The hidden states of every position need every row to the end. */
	batch.keep = hidden == NULL ? s->keep_rows : NULL;
	batch.n_keep = n;
	if ((st = cm_forward_begin(s, &team, err)) != CM_OK)
		return st;
	cm_forward_plan(s, w->layers, &batch);
	if ((st = cm_state_reserve_tower(s, &tc->t, &batch, 0, model->precision == CM_PRECISION_BF16,
									 err)) != CM_OK ||
		(st = cm_check_cancel(opt, err)) != CM_OK)
	{
		cm_forward_team_stop(s);
		return st;
	}

	/* Embeddings */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n_ids[i]; j++)
		{
			float	   *x = s->x.p + (size_t) (s->seq_start[i] + j) * d;
			size_t		row = (size_t) ids[i][j] * w->token_embedding.ld;
			const float *pe = w->position_embedding + (size_t) j * d;

			if (w->token_embedding.type == CM_ELEM_BF16)
			{
				const uint16_t *te = (const uint16_t *) w->token_embedding.p + row;

				for (int c = 0; c < d; c++)
					x[c] = cm_f32_from_bf16(te[c]) + pe[c];
			}
			else
			{
				const float *te = (const float *) w->token_embedding.p + row;

				for (int c = 0; c < d; c++)
					x[c] = te[c] + pe[c];
			}
		}

	if ((st = cm_transformer_forward(&tc->t, w->layers, s, &batch, tc->causal, opt, err)) != CM_OK)
	{
		cm_forward_team_stop(s);
		return st;
	}

	if (hidden != NULL)
		cm_layer_norm(s->x.p, hidden, rows, d, w->final_ln_w, w->final_ln_b, tc->t.layer_norm_eps);

	/* The final layer norm is per row: only the pooled rows need it. */
	for (int i = 0; i < n; i++)
	{
		int			row = batch.keep != NULL ? i : s->keep_rows[i];

		cm_layer_norm(s->x.p + (size_t) row * d, s->pooled.p + (size_t) i * d,
					  1, d, w->final_ln_w, w->final_ln_b, tc->t.layer_norm_eps);
	}
	cm_linear_f32(s->team, CM_GEMM_AUTO, &s->lanes[0], s->pooled.p, n, d, w->projection, w->projection_b, out,
				  model->config.projection_dim, false);
	cm_forward_team_stop(s);
	return CM_OK;
}
