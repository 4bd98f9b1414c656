# cisweep build. C11; objects in build/, binaries in build/bin/.
#   make            build cisweep (coordinator + CLI) and cisweep-worker (daemon + model tools)
#   make test       install deps if missing, build, run every test (tests/run.sh)
#   make run        install deps if missing, build, run the study end to end on the embedded default
#                   (`cisweep run`: world, models, statistics, grids/paper-417.json, report, findings)
#   make demo       the quick tour: one model, grids/default.json
#   make bench      run the benchmarks under tests/bench/
#   make SANITIZE=address ...   build with AddressSanitizer into build-asan/
# CI=1 (or CI=true) adds -Werror. nvcc is detected; .cu files are compiled where it exists.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -I. -MMD -MP -pthread
LDLIBS  := -lzmq -lsqlite3 -ljansson -lopenblas -llapacke -lz -lzstd -lpthread -lm
ifneq ($(CI),)
CFLAGS  += -Werror
endif
ifneq ($(SANITIZE),)
BUILD   := build-asan
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif

NVCC    := $(shell command -v nvcc 2>/dev/null)
CU_SRC  := $(shell find worker -name '*.cu' 2>/dev/null)
ifneq ($(NVCC),)
ifneq ($(CU_SRC),)
CUDA_ON := 1
CFLAGS  += -DCISWEEP_CUDA=1
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVFLAGS := -std=c++17 -O2 -arch=sm_90 -I. -Xcompiler -Wall -Xcompiler -fPIC -DCISWEEP_CUDA=1
ifneq ($(CI),)
NVFLAGS += -Xcompiler -Werror
endif
# the cuda backend is a shared library loaded on first use (backend.c); the binaries export the
# engine's symbols it calls back (-rdynamic) and never link the CUDA libraries themselves
CUDA_LIB := $(BUILD)/lib/libcisweep-cuda.so
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -lcudart -lcublas -lcusolver
WORKER_LDLIBS := -rdynamic -ldl
endif
endif

COMMON_SRC := $(sort $(wildcard common/*.c))
COORD_SRC  := $(sort $(filter-out coordinator/main.c,$(wildcard coordinator/*.c)))
WORKER_SRC := $(sort $(filter-out worker/main.c,$(shell find worker -name '*.c')))
TEST_SRC   := $(sort $(shell find tests -name 'test_*.c'))
BENCH_SRC  := $(sort $(shell find tests/bench -name 'bench_*.c' 2>/dev/null))

COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
COORD_OBJ  := $(COORD_SRC:%.c=$(BUILD)/%.o)
WORKER_OBJ := $(WORKER_SRC:%.c=$(BUILD)/%.o)
CUDA_OBJ   := $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
TEST_BIN   := $(TEST_SRC:%.c=$(BUILD)/%)
BENCH_BIN  := $(BENCH_SRC:%.c=$(BUILD)/%)

LIBCOMMON := $(BUILD)/libcommon.a
LIBCOORD  := $(BUILD)/libcoord.a
LIBWORKER := $(BUILD)/libworker.a

.PHONY: all test test-gpu run demo bench clean deps tests-build info family
all: info $(BUILD)/bin/cisweep $(BUILD)/bin/cisweep-worker $(CUDA_LIB)

info:
	@if [ -n "$(NVCC)" ]; then echo "✓ nvcc: $(NVCC)$(if $(CU_SRC),, (no .cu sources yet))"; else echo "✗ nvcc not found: CPU backend only"; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# -MMD -MP -MF: the headers each .cu includes (backend.h's iface above all) rebuild it when they
# change; without them a stale libcisweep-cuda.so kept an old, shorter backend_iface
$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

ifeq ($(CUDA_ON),1)
$(CUDA_LIB): $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	$(NVCC) -shared -o $@ $^ $(CUDA_LIBS)
endif

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBCOORD): $(COORD_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBWORKER): $(WORKER_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

# schema.sql is compiled into the binaries (one source of truth, no file to lose at run time)
$(BUILD)/gen/schema_sql.h: schema/schema.sql
	@mkdir -p $(dir $@)
	@{ echo "/* generated from schema/schema.sql by the Makefile; do not edit */"; \
	   echo "static const char SCHEMA_SQL[] = "; \
	   sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; echo ";"; } > $@
$(BUILD)/coordinator/job_store.o: $(BUILD)/gen/schema_sql.h
# so is views.sql, the composability views (re-created on open when they differ; job_store_views.c)
$(BUILD)/gen/views_sql.h: schema/views.sql
	@mkdir -p $(dir $@)
	@{ echo "/* generated from schema/views.sql by the Makefile; do not edit */"; \
	   echo "static const char VIEWS_SQL[] = "; \
	   sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; echo ";"; } > $@
$(BUILD)/coordinator/job_store_views.o: $(BUILD)/gen/views_sql.h
CFLAGS += -I$(BUILD)/gen
# the Slurm batch templates are compiled into `cisweep slurm submit` the same way (issue 15)
$(BUILD)/gen/slurm_templates.h: deploy/slurm/worker.sbatch deploy/slurm/coordinator.sbatch
	@mkdir -p $(dir $@)
	@{ echo "/* generated from deploy/slurm/{worker,coordinator}.sbatch by the Makefile; do not edit */"; \
	   for t in worker coordinator; do echo "static const char TPL_$$(echo $$t | tr a-z A-Z)_SBATCH[] = "; \
	   sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' deploy/slurm/$$t.sbatch; echo ";"; done; } > $@
$(BUILD)/coordinator/cmd_slurm.o: $(BUILD)/gen/slurm_templates.h

$(BUILD)/bin/cisweep: $(BUILD)/coordinator/main.o $(LIBCOORD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/cisweep-worker: $(BUILD)/worker/main.o $(LIBWORKER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(WORKER_LDLIBS)

# every test program links every library, so a test can reach any module
$(BUILD)/tests/%: tests/%.c $(LIBCOORD) $(LIBWORKER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBCOORD) $(LIBWORKER) $(LIBCOMMON) $(LDLIBS) $(WORKER_LDLIBS)

tests-build: all $(TEST_BIN) $(BENCH_BIN)

deps:
	@bash deploy/install-deps.sh

# make test: every test on the normal build, then the parsers and stores again under
# AddressSanitizer (build-asan/): bad input must never read out of bounds
ASAN_TESTS ?= fuzz_regressions|family_shipped|protocol|artifact_cache|rng|spec|grid|safetensors|tokenizer|spool|job_store|loaders|world|reference_tool|eval_mc|eval_metrics|bpe_train|backend_ops|model_staged|interventions|train_loop|pretrain|svg_plot|prefix_key|prefix_claim|snapshot|test_mask|job_store_views|model_presets|cpu_threads|test_prereq|mem_need
test: deps
	@$(MAKE) --no-print-directory tests-build
	@$(MAKE) --no-print-directory SANITIZE=address tests-build >/dev/null
	@if command -v clang >/dev/null 2>&1; then $(MAKE) --no-print-directory fuzz-build >/dev/null; fi
	@ASAN_BUILD=build-asan ASAN_TESTS='$(ASAN_TESTS)' bash tests/run.sh

# make test-gpu: the GPU checks (on the GPU machine; they skip, visibly, where no GPU answers):
# every backend op on cuda:0 against fp64 references, the whole model on cuda:0 against the cpu
test-gpu: tests-build
	@bash tests/run.sh test_backend_ops && bash tests/run.sh test_model_device

run: deps
	@$(MAKE) --no-print-directory -j$$(nproc) all
	@$(BUILD)/bin/cisweep run

# make family: rebuild the shipped family (models/family) from a fresh world and compare every
# sha256 with its manifest (docs/training.md); FAMILY_ARGS=--prefix checks the short prefix only
family:
	@$(MAKE) --no-print-directory all
	@python3 deploy/rebuild-family.py $(FAMILY_ARGS)

# make demo: the quick tour of before issue 12 (one model, grids/default.json, a CSV export)
demo: deps
	@$(MAKE) --no-print-directory all
	@bash deploy/run-default.sh

bench: deps
	@$(MAKE) --no-print-directory tests-build
	@bash tests/bench/run.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- fuzzing (issue 13): libFuzzer targets tests/fuzz/fuzz_*.c, built with clang into build-fuzz/
#   make fuzz                 build, then run each target FUZZ_SECONDS (default 60) from its seed
#                             corpus tests/fuzz/corpus/<target>/ (the regression inputs included)
# make test builds them too where clang is present; tests/fuzz/test_fuzz_short.py runs each briefly.
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES   := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_SECONDS ?= 60
FUZZ_SAN     := fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
CLANG        := $(shell command -v clang 2>/dev/null)

fuzz-build:
	@test -n "$(CLANG)" || { echo "make fuzz needs clang (libFuzzer)"; exit 2; }
	@$(MAKE) --no-print-directory CC=clang BUILD=build-fuzz OPT='-O1 -Wno-unknown-warning-option' SANITIZE='$(FUZZ_SAN)' fuzz-bins

fuzz-bins: $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz_util.h $(LIBCOORD) $(LIBWORKER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIBCOORD) $(LIBWORKER) $(LIBCOMMON) $(LDLIBS) $(WORKER_LDLIBS)

fuzz: deps fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) python3 tests/fuzz/test_fuzz_short.py
