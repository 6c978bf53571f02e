# crossmodal: PGXS build of the PostgreSQL extension.
# The encoder runtime (encoders/) is compiled into the same shared library;
# its standalone library, CLI, unit tests and fuzzers are built by encoders/Makefile.

EXTENSION = crossmodal
EXTVERSION = 0.2.0

MODULE_big = crossmodal
EXTENSION_SRCS = $(sort $(wildcard extension/*.c))
ENCODER_SRCS = $(sort $(wildcard encoders/*.c))
OBJS = $(EXTENSION_SRCS:.c=.o) $(ENCODER_SRCS:.c=.o)

# The install script is assembled from numbered parts, one per module, kept
# in sql/install_parts/; update scripts from earlier versions sit in sql/.
# (Not named INSTALL_SCRIPT: PGXS uses that name for its install command.)
EXTENSION_SCRIPT = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA_built = $(EXTENSION_SCRIPT)
DATA = $(sort $(wildcard sql/$(EXTENSION)--*--*.sql))

# pg_regress tests: test/sql/NAME.sql against test/expected/NAME.out.
REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)

# Only when there are TAP tests: PGXS would otherwise run prove on nothing and fail installcheck.
TAP_TESTS := $(if $(wildcard test/t/*.pl),1)
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
OPENBLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

PG_CPPFLAGS = -Iextension -Iencoders -I/usr/include/cjson $(OPENBLAS_CFLAGS)
# Hidden visibility: the library exports only what extension/crossmodal.h
# marks (PostgreSQL loads libraries with global binding; see that header).
PG_CFLAGS = -std=gnu11 -fvisibility=hidden
SHLIB_LINK = $(OPENBLAS_LIBS) -lcjson -lutf8proc -ljpeg -lwebp -lwebpdemux -ltiff -lz -lm

# `make WERROR=1`: warnings are errors on our own files (CI does this).
ifdef WERROR
PG_CFLAGS += -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers
endif

EXTRA_CLEAN = $(EXTENSION_SCRIPT)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION_SCRIPT): $(sort $(wildcard sql/install_parts/*.sql))
	cat $^ > $@

# PGXS knows no header dependencies (Debian's PostgreSQL is built without
# --enable-depend): an object left from before a header changed would be
# linked with objects that see a different struct layout.  Every object
# depends on every header, as in encoders/Makefile.
HEADERS = $(wildcard extension/*.h encoders/*.h)
$(OBJS) $(OBJS:.o=.bc): $(HEADERS)

# Models shipped with the extension: every models/NAME/ directory holding a
# config.json is installed into <sharedir>/extension/crossmodal_models/NAME,
# the default of crossmodal.model_path.
MODEL_DIRS = $(patsubst %/config.json,%,$(wildcard models/*/config.json))
MODEL_FILES = config.json model.safetensors vocab.json merges.txt preprocessor_config.json \
	tokenizer_config.json README.md
MODELS_INSTALL_DIR = $(DESTDIR)$(datadir)/extension/crossmodal_models

.PHONY: install-models uninstall-models
install: install-models
install-models:
	install -d '$(MODELS_INSTALL_DIR)'
	@for dir in $(MODEL_DIRS); do \
		name=$$(basename "$$dir"); \
		install -d "$(MODELS_INSTALL_DIR)/$$name" || exit 1; \
		for f in $(MODEL_FILES); do \
			if [ -f "$$dir/$$f" ]; then \
				install -m 644 "$$dir/$$f" "$(MODELS_INSTALL_DIR)/$$name/$$f" || exit 1; \
			fi; \
		done; \
	done

uninstall: uninstall-models
uninstall-models:
	@for dir in $(MODEL_DIRS); do \
		rm -rf "$(MODELS_INSTALL_DIR)/$$(basename "$$dir")"; \
	done

# `make fuzz-long`: every fuzz target for 10 million executions or an hour
# (test/fuzz/run-long.sh; the encoder runtime's Makefile builds them).
.PHONY: fuzz-long
fuzz-long:
	$(MAKE) -C encoders fuzz-long

# `make prove_installcheck`: the TAP tests alone, against the installed server
# binaries (test/run.sh runs them as a stage of their own).
.PHONY: prove_installcheck
prove_installcheck:
	$(prove_installcheck)
