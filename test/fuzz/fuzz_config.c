/*
 * fuzz_config.c
 *	  libFuzzer target: arbitrary bytes as config.json, as
 *	  preprocessor_config.json and as open_clip_config.json.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Empty (the default file), or a relative path none of whose parts is empty,
 * "." or "..": a name such as "a..b" is an ordinary file name.
 */
static bool
path_stays_inside(const char *path)
{
	const char *part = path;

	if (path[0] == '\0')
		return true;
	if (path[0] == '/')
		return false;
	for (;;)
	{
		const char *slash = strchr(part, '/');
		size_t		n = slash ? (size_t) (slash - part) : strlen(part);

		if (n == 0 || (n == 1 && part[0] == '.') || (n == 2 && part[0] == '.' && part[1] == '.'))
			return false;
		if (!slash)
			return true;
		part = slash + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cm_config	cfg;
	cm_image_params img;
	cm_error	err;

	err.message[0] = '\0';
	if (cm_config_parse((const char *) data, size, "config.json", &cfg, &err) == CM_OK)
	{
		/* What the loader relies on. */
		if (cfg.text.t.hidden_size % cfg.text.t.num_heads != 0 ||
			cfg.vision.t.hidden_size % cfg.vision.t.num_heads != 0 ||
			cfg.vision.grid < 1 || cfg.vision.num_channels != 3 ||
			cfg.text.eos_token_id >= cfg.text.vocab_size ||
			cfg.text.t.num_layers > CM_CONFIG_MAX_LAYERS || cfg.vision.t.num_layers > CM_CONFIG_MAX_LAYERS ||
			!(cfg.text.t.layer_norm_eps > 0))
			abort();
	}
	else if (err.message[0] == '\0')
		abort();
	else
	{
		/* Fall back to the defaults' vision tower for the preprocessor pass. */
		cm_config_parse("{}", 2, "defaults", &cfg, &err);
	}
	err.message[0] = '\0';
	if (cm_preprocessor_parse((const char *) data, size, "preprocessor_config.json",
							  &cfg.vision, &img, &err) == CM_OK)
	{
		if (img.crop_height != cfg.vision.image_size || !(img.std[0] > 0 && img.std[1] > 0 && img.std[2] > 0))
			abort();
	}
	else if (err.message[0] == '\0')
		abort();

	err.message[0] = '\0';
	if (cm_openclip_config_parse((const char *) data, size, "open_clip_config.json", &cfg, &img, &err) == CM_OK)
	{
		/* What the loader relies on; bpe_path stays inside the model directory. */
		if (cfg.family != CM_FAMILY_OPENCLIP ||
			cfg.text.t.hidden_size % cfg.text.t.num_heads != 0 ||
			cfg.vision.t.hidden_size % cfg.vision.t.num_heads != 0 ||
			cfg.vision.grid < 1 || !cfg.vision.class_token ||
			cfg.text.t.intermediate_size < 1 || cfg.vision.t.intermediate_size < 1 ||
			!(cfg.text.t.layer_norm_eps > 0) || !(cfg.vision.t.layer_norm_eps > 0) ||
			img.crop_height != cfg.vision.image_size || !img.torchvision ||
			!(img.std[0] > 0 && img.std[1] > 0 && img.std[2] > 0) ||
			memchr(cfg.bpe_path, '\0', sizeof(cfg.bpe_path)) == NULL ||
			!path_stays_inside(cfg.bpe_path))
			abort();
	}
	else if (err.message[0] == '\0')
		abort();
	return 0;
}
