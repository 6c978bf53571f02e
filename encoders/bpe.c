/*
 * bpe.c
 *	  The merge step of byte-pair encoding, for every BPE tokenizer: merges
 *	  apply lowest rank first through a heap over adjacent pairs (never a
 *	  greedy longest match), each pair checked against the live symbols when
 *	  it is popped.
 */
#include "bpe.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY_PAIR UINT64_MAX

typedef struct heap_entry
{
	int32_t		rank;
	int32_t		left;			/* symbol positions */
	int32_t		right;
	int32_t		left_id;		/* ids when queued; stale if they changed */
	int32_t		right_id;
	int32_t		merged;
} heap_entry;

uint64_t
cm_hash_bytes(const char *s, size_t n)
{
	uint64_t	h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
	{
		h ^= (unsigned char) s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

int32_t
cm_bpe_byte_char(unsigned char b)
{
	/* not printable: 0x00-0x20 (33 bytes), 0x7F-0xA0 (34), 0xAD */
	if (b <= 0x20)
		return 0x100 + b;
	if (b >= 0x7F && b <= 0xA0)
		return 0x100 + 33 + (b - 0x7F);
	if (b == 0xAD)
		return 0x100 + 33 + 34;
	return b;
}

static uint64_t
hash_pair(uint64_t x)
{
	x ^= x >> 33;				/* murmur3 finaliser */
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

bool
cm_hash_table_size(size_t n, size_t *size)
{
	size_t		s = 16;

	while (s < n || s - n < n)
	{
		if (!cm_mul_size(s, 2, &s))
			return false;
	}
	*size = s;
	return true;
}

cm_status
cm_bpe_merges_init(cm_bpe_merges *m, size_t capacity, cm_error *err)
{
	size_t		slots;

	memset(m, 0, sizeof(*m));
	if (!cm_hash_table_size(capacity, &slots) || slots > SIZE_MAX / sizeof(cm_bpe_merge_slot) ||
		(m->slots = malloc(slots * sizeof(cm_bpe_merge_slot))) == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for %zu merges", capacity);
	m->mask = slots - 1;
	for (size_t i = 0; i < slots; i++)
		m->slots[i].pair = EMPTY_PAIR;
	return CM_OK;
}

void
cm_bpe_merges_free(cm_bpe_merges *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static const cm_bpe_merge_slot *
merge_find(const cm_bpe_merges *m, int32_t left, int32_t right)
{
	uint64_t	pair = ((uint64_t) (uint32_t) left << 32) | (uint32_t) right;
	size_t		i = hash_pair(pair) & m->mask;

	for (;;)
	{
		const cm_bpe_merge_slot *slot = &m->slots[i];

		if (slot->pair == pair)
			return slot;
		if (slot->pair == EMPTY_PAIR)
			return NULL;
		i = (i + 1) & m->mask;
	}
}

void
cm_bpe_merges_add(cm_bpe_merges *m, int32_t left, int32_t right, int32_t merged)
{
	uint64_t	pair = ((uint64_t) (uint32_t) left << 32) | (uint32_t) right;
	size_t		i = hash_pair(pair) & m->mask;

	while (m->slots[i].pair != EMPTY_PAIR && m->slots[i].pair != pair)
		i = (i + 1) & m->mask;
	m->slots[i].pair = pair;
	m->slots[i].rank = m->n++;
	m->slots[i].merged = merged;
}

void
cm_bpe_work_free(cm_bpe_work *w)
{
	free(w->prev);
	free(w->next);
	free(w->heap);
	memset(w, 0, sizeof(*w));
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
heap_less(const heap_entry *a, const heap_entry *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void
heap_push(cm_bpe_work *w, heap_entry e)
{
	heap_entry *heap = w->heap;
	size_t		i = w->heap_len++;

	/* capacity is reserved for every push a word can make */
	while (i > 0)
	{
		size_t		parent = (i - 1) / 2;

		if (!heap_less(&e, &heap[parent]))
			break;
		heap[i] = heap[parent];
		i = parent;
	}
	heap[i] = e;
}

static heap_entry
heap_pop(cm_bpe_work *w)
{
	heap_entry *heap = w->heap;
	heap_entry	top = heap[0];
	heap_entry	last = heap[--w->heap_len];
	size_t		i = 0;
	size_t		n = w->heap_len;

	for (;;)
	{
		size_t		child = 2 * i + 1;

		if (child >= n)
			break;
		if (child + 1 < n && heap_less(&heap[child + 1], &heap[child]))
			child++;
		if (!heap_less(&heap[child], &last))
			break;
		heap[i] = heap[child];
		i = child;
	}
	if (n > 0)
		heap[i] = last;
	return top;
}

static void
queue_pair(const cm_bpe_merges *m, cm_bpe_work *w, const int32_t *syms, int32_t left)
{
	int32_t		right = w->next[left];
	const cm_bpe_merge_slot *slot;

	if (right < 0)
		return;
	slot = merge_find(m, syms[left], syms[right]);
	if (slot != NULL)
	{
		heap_entry	e = {slot->rank, left, right, syms[left], syms[right], slot->merged};

		heap_push(w, e);
	}
}

cm_status
cm_bpe_merge(const cm_bpe_merges *m, cm_bpe_work *w, int32_t *syms, size_t n, size_t *n_out,
			 cm_error *err)
{
	size_t		heap_need,
				cap_prev = w->cap,
				cap_next = w->cap,
				out = 0;

	*n_out = n;
	if (n < 2)
		return CM_OK;
	/* n - 1 initial pairs, then at most two new pairs per merge */
	if (n > INT32_MAX || !cm_mul_size(n, 3, &heap_need) ||
		!grow((void **) &w->prev, &cap_prev, n, sizeof(int32_t)) ||
		!grow((void **) &w->next, &cap_next, n, sizeof(int32_t)) ||
		!grow(&w->heap, &w->heap_cap, heap_need, sizeof(heap_entry)))
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
	w->cap = cap_next < cap_prev ? cap_next : cap_prev;

	for (size_t i = 0; i < n; i++)
	{
		w->prev[i] = (int32_t) i - 1;
		w->next[i] = i + 1 < n ? (int32_t) i + 1 : -1;
	}
	w->heap_len = 0;
	for (size_t i = 0; i + 1 < n; i++)
		queue_pair(m, w, syms, (int32_t) i);

	while (w->heap_len > 0)
	{
		heap_entry	e = heap_pop(w);
		int32_t		after;

		if (syms[e.left] != e.left_id || w->next[e.left] != e.right ||
			syms[e.right] != e.right_id)
			continue;			/* one side was merged away since */
		syms[e.left] = e.merged;
		after = w->next[e.right];
		w->next[e.left] = after;
		if (after >= 0)
			w->prev[after] = e.left;
		syms[e.right] = -1;
		w->next[e.right] = -1;
		if (w->prev[e.left] >= 0)
			queue_pair(m, w, syms, w->prev[e.left]);
		queue_pair(m, w, syms, e.left);
	}

	/* the first symbol is never merged away: merges keep the left position */
	for (int32_t i = 0; i >= 0; i = w->next[i])
		syms[out++] = syms[i];
	*n_out = out;
	return CM_OK;
}
