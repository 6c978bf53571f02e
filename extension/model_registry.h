/*
 * model_registry.h
 *	  Per-backend cache of loaded encoder models, model-directory resolution,
 *	  the encoder settings (crossmodal.*) and the bridge from the runtime's
 *	  status codes to PostgreSQL errors.
 *
 * A model is a sub-directory NAME of one of the directories listed in
 * crossmodal.model_path.  It is loaded on first use in a backend, kept for
 * the backend's lifetime and shared by every call; nothing of a model that
 * failed to load stays behind.  The runtime's memory is malloc'd, so the
 * runtime is never interrupted by a longjmp: cancellation is polled through a
 * callback and acted upon after the runtime has returned.
 */
#ifndef CROSSMODAL_MODEL_REGISTRY_H
#define CROSSMODAL_MODEL_REGISTRY_H

#include "postgres.h"

#include "nodes/pg_list.h"

#include "crossmodal_encoder.h"

/*
 * The model shipped with the extension (models/NAME/ in the source tree),
 * the out-of-the-box value of crossmodal.default_model.
 */
#define CM_SHIPPED_MODEL_NAME "emoji-clip-en-ko"

/* Folder under the installation's share directory holding shipped models. */
#define CM_MODELS_SHARE_SUBDIR "extension/crossmodal_models"

/* Most inputs one batch call (or one image_labels label list) accepts. */
#define CM_MAX_BATCH_INPUTS 10000

/* Longest model name accepted (a directory name). */
#define CM_MAX_MODEL_NAME 128

/* Settings (model_registry.c). */
extern char *cm_model_path;
extern char *cm_default_model;
extern int	cm_threads;
extern int	cm_max_image_bytes;
extern int	cm_max_image_pixels;
extern bool cm_orientation_setting;
extern int	cm_background_setting;
extern int	cm_decode_setting;
extern int	cm_precision_setting;	/* a cm_precision */

/* A model loaded in this backend; owned by the registry. */
typedef struct CmModelEntry
{
	struct CmModelEntry *next;
	char	   *name;			/* as requested */
	char	   *directory;		/* resolved model directory (cache key) */
	cm_precision precision;		/* crossmodal.precision it was loaded at (key) */
	cm_model   *model;			/* malloc'd by the runtime */
	cm_model_info info;
} CmModelEntry;

/*
 * Everything one runtime call needs: the options with the cancel callback
 * and limits, and room for the runtime's log messages, which are emitted
 * only after the call has returned (elog must not run inside it).
 */
#define CM_RUN_LOG_SLOTS 4
typedef struct CmRun
{
	cm_run_options options;
	int			n_log;			/* messages received (may exceed the slots) */
	int			log_level[CM_RUN_LOG_SLOTS];
	char		log_text[CM_RUN_LOG_SLOTS][256];
	cm_error	err;
} CmRun;

/* Registers the settings; called once from _PG_init. */
extern void EncoderRegistryInit(void);

/* Raises 22023 unless name is a valid model name. */
extern void CmCheckModelName(const char *name);

/* The model to use, loaded now if needed; raises on any failure. */
extern CmModelEntry *CmGetModel(const char *name);

/* The per-backend activation state shared by every model. */
extern cm_state *CmGetState(void);

/* Prepare a runtime call: cancel callback, limits, threads, log capture. */
extern void CmRunBegin(CmRun *run);

/*
 * After a runtime call: emit captured log messages; on failure raise the
 * fitting error (after honouring a pending cancel).  what describes the
 * input for messages ("text", "image"); element, when not 0, is the
 * failing input's 1-based position in the caller's array.
 */
extern void CmRunEnd(CmRun *run, cm_status status, const CmModelEntry *entry,
					 const char *what, int element);

/* One row of crossmodal_models(). */
typedef struct CmModelListing
{
	char	   *name;
	char	   *directory;
	bool		loaded;
	bool		have_info;
	cm_model_info info;
	char	   *weight_dtype;	/* palloc'd copy */
	char	   *family;			/* palloc'd copy: clip, siglip, openclip */
	char	   *tokenizer;		/* palloc'd copy of the tokenizer kind */
	char	   *problem;		/* NULL when the model loads */
} CmModelListing;

/* Every model visible on crossmodal.model_path, sorted by name. */
extern List *CmListModels(void);

#endif							/* CROSSMODAL_MODEL_REGISTRY_H */
