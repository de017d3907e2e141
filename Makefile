# modular.h - build, test, run and measure.
#
#   make            build the examples and the tests
#   make run        the main job: build the examples and run them
#   make test       build and run every test (tests/test_*.c, and the C++ check)
#   make sanitize   the tests under -fsanitize=address,undefined
#   make valgrind   the tests under valgrind (memcheck)
#   make bench      the benchmarks (tests/bench/*.c) with reference libraries
#   make CC=clang test   the same with clang
#   make fuzz       the libFuzzer harnesses (tests/fuzz/), FUZZ_SECONDS each
#   make tsan       the threaded tests under -fsanitize=thread
#   make alloc-fail whole programs with allocation k failing, for every k
#
# Every target installs the Debian packages it needs when they are missing.

CC ?= cc
CXX ?= c++
OPT ?= -O2 -g
WARN = -Wall -Wextra -Wpedantic -Werror
CFLAGS_ALL = -std=c99 $(OPT) $(WARN) -I. $(CFLAGS)
CXXFLAGS_ALL = -std=c++11 $(OPT) $(WARN) -I. $(CXXFLAGS)
LDLIBS = -lm -lpthread
BENCH_LIBS = -lopenblas -ldnnl

BUILD ?= build
TEST_SRC = $(wildcard tests/test_*.c)
CXX_SRC = $(wildcard tests/test_*.cpp)
EXAMPLE_SRC = $(wildcard examples/*.c)
BENCH_SRC = $(wildcard tests/bench/*.c)
HEADERS = modular.h modular_tensor.h $(wildcard tests/*.h) $(wildcard examples/*.h)

TESTS = $(patsubst tests/%.c,$(BUILD)/%,$(TEST_SRC)) $(patsubst tests/%.cpp,$(BUILD)/%,$(CXX_SRC))
EXAMPLES = $(patsubst examples/%.c,$(BUILD)/%,$(EXAMPLE_SRC))
BENCHES = $(patsubst tests/bench/%.c,$(BUILD)/%,$(BENCH_SRC))

DEPS_BUILD = libstb-dev
DEPS_TEST = libstb-dev g++
DEPS_VALGRIND = valgrind
DEPS_BENCH = libstb-dev libopenblas-dev libdnnl-dev

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# $(call ensure_packages,list): installs the missing Debian packages.
define ensure_packages
	@if command -v dpkg >/dev/null 2>&1; then \
	  missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  fi; \
	fi
endef

.PHONY: all run test sanitize valgrind bench benches clean deps-build deps-test deps-valgrind deps-bench examples tests \
	fuzz fuzzers deps-fuzz tsan alloc-fail

all: deps-build
	@$(MAKE) --no-print-directory examples tests

examples: $(EXAMPLES)
tests: $(TESTS)

deps-build:
	$(call ensure_packages,$(DEPS_BUILD))
deps-test:
	$(call ensure_packages,$(DEPS_TEST))
deps-valgrind:
	$(call ensure_packages,$(DEPS_TEST) $(DEPS_VALGRIND))
deps-bench:
	$(call ensure_packages,$(DEPS_BENCH))

$(BUILD)/%: examples/%.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LDLIBS)

$(BUILD)/%: tests/%.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LDLIBS)

$(BUILD)/%: tests/%.cpp $(HEADERS) | $(BUILD)
	$(CXX) $(CXXFLAGS_ALL) -o $@ $< $(LDLIBS)

$(BUILD):
	@mkdir -p $(BUILD)

# Runs each test binary quietly; prints its closing line; fails if any fails.
RUN_TESTS = fail=0; for t in $(TESTS); do \
	  out=$$($(1) ./$$t 2>&1); rc=$$?; \
	  printf '%-32s %s\n' "$$(basename $$t)" "$$(printf '%s\n' "$$out" | tail -n 1)"; \
	  if [ $$rc -ne 0 ]; then printf '%s\n' "$$out" | grep -v '^ok ' | tail -n 60; fail=1; fi; \
	done; exit $$fail

test: deps-test
	@$(MAKE) --no-print-directory tests
	@TEST_QUIET=1; export TEST_QUIET; $(call RUN_TESTS,)

# The main job: the four seed examples (their text goes to out/<name>.txt),
# then the diffusion pipeline: its block tree and doc, text-to-image for
# three prompts, image-to-image, inpainting, and one image from the
# command-line example, as PNG files in out/.
SEED_EXAMPLES = pipeline_block sequential_blocks loop_blocks auto_blocks
run: deps-build
	@$(MAKE) -j2 --no-print-directory examples
	@mkdir -p out
	@for e in $(SEED_EXAMPLES); do $(BUILD)/$$e > out/$$e.txt || exit 1; \
	  echo "== $(BUILD)/$$e: ok (printed to out/$$e.txt)"; done
	@echo "== $(BUILD)/main_job"; $(BUILD)/main_job
	@echo "== $(BUILD)/generate"; $(BUILD)/generate --prompt "a small purple star at the top on a black background" \
	  --seed 3 --out out/generate.png

SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
sanitize: deps-test
	@$(MAKE) --no-print-directory tests BUILD=build/sanitize OPT="-O1 -g $(SAN_FLAGS)"
	@TEST_QUIET=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1; \
	  export TEST_QUIET ASAN_OPTIONS UBSAN_OPTIONS; $(MAKE) --no-print-directory run-tests BUILD=build/sanitize

valgrind: deps-valgrind
	@$(MAKE) --no-print-directory tests BUILD=build/valgrind OPT="-O1 -g"
	@TEST_QUIET=1 MT_VALGRIND=1; export TEST_QUIET MT_VALGRIND; \
	  $(MAKE) --no-print-directory run-tests BUILD=build/valgrind \
	  RUNNER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible"

.PHONY: run-tests
run-tests:
	@$(call RUN_TESTS,$(RUNNER))

bench: deps-bench
	@$(MAKE) --no-print-directory $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; ./$$b || exit 1; done

# builds the benchmarks without running them (CI: -O3 warnings)
benches: deps-bench
	@$(MAKE) --no-print-directory $(BENCHES)

$(BUILD)/%: tests/bench/%.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -O3 -o $@ $< $(LDLIBS) $(BENCH_LIBS)

# ---- fuzzing: libFuzzer harnesses (tests/fuzz/fuzz_*.c) built with clang,
# each run for FUZZ_SECONDS on a corpus kept in build/fuzz/corpus/<name>,
# after the seeds tests/fuzz/make_seeds.c writes and the inputs kept in
# tests/fuzz/regress/<name> (past findings). A finding is written to
# build/fuzz/artifacts/ and fails the target; replay it with
# build/fuzz/<name> <file>.
FUZZ_SECONDS ?= 180
FUZZ_CC ?= clang
FUZZ_BUILD = build/fuzz
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS = $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
FUZZ_FLAGS = -std=c99 -g -O1 $(WARN) -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fsanitize-recover=shift -fno-omit-frame-pointer
FUZZ_UBSAN = UBSAN_OPTIONS=suppressions=tests/fuzz/ubsan.supp:halt_on_error=1:print_stacktrace=1
DEPS_FUZZ = clang libclang-rt-14-dev libstb-dev

deps-fuzz:
	$(call ensure_packages,$(DEPS_FUZZ))

fuzzers: $(FUZZERS) $(FUZZ_BUILD)/make_seeds

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/*.h $(HEADERS)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(LDLIBS)

$(FUZZ_BUILD)/make_seeds: tests/fuzz/make_seeds.c tests/fuzz/*.h $(HEADERS)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) -std=c99 -O1 -g $(WARN) -I. -o $@ $< $(LDLIBS)

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory fuzzers
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p $(FUZZ_BUILD)/seeds/$$n $(FUZZ_BUILD)/corpus/$$n; done
	@mkdir -p $(FUZZ_BUILD)/artifacts && $(FUZZ_BUILD)/make_seeds $(FUZZ_BUILD)/seeds
	@for f in $(FUZZERS); do n=$$(basename $$f); \
	  dict=""; [ -f tests/fuzz/$$n.dict ] && dict="-dict=tests/fuzz/$$n.dict"; \
	  regress=""; [ -d tests/fuzz/regress/$$n ] && regress="tests/fuzz/regress/$$n"; \
	  echo "== $$n: $(FUZZ_SECONDS) s"; \
	  $(FUZZ_UBSAN) $$f -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=2560 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$n- $$dict $(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/seeds/$$n $$regress \
	    > $(FUZZ_BUILD)/$$n.log 2>&1; rc=$$?; \
	  grep -E '^#[0-9]+.*cov:' $(FUZZ_BUILD)/$$n.log | tail -n 1 | sed 's/ exec\/s.*//'; \
	  if [ $$rc -ne 0 ]; then grep -v '^#\|^INFO\|^"' $(FUZZ_BUILD)/$$n.log | tail -40; \
	    echo "$$n: finding in $(FUZZ_BUILD)/artifacts/ (log: $(FUZZ_BUILD)/$$n.log)"; exit 1; fi; \
	done

# ---- ThreadSanitizer: every test that starts threads (pthread_create or
# mt_set_num_threads), built with -fsanitize=thread
TSAN_TESTS = $(patsubst tests/%.c,build/tsan/%,$(shell grep -l 'pthread_create\|mt_set_num_threads' tests/test_*.c))
tsan: deps-test
	@$(MAKE) --no-print-directory $(TSAN_TESTS) BUILD=build/tsan OPT="-O1 -g -fsanitize=thread -fno-omit-frame-pointer"
	@TEST_QUIET=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"; export TEST_QUIET TSAN_OPTIONS; \
	  $(MAKE) --no-print-directory run-tests BUILD=build/tsan TESTS="$(TSAN_TESTS)"

# ---- allocation failure over whole programs (tests/alloc_fail/sweep_*.c):
# the seeds' examples with allocation k failing for every k, under
# AddressSanitizer and LeakSanitizer (tests/test_alloc_fail.c, in make
# test, does the same for a composite pipeline call by call)
# the seeds' programs and a safetensors round trip, with allocation k failing
# for every k, and the diffusion example's three generations (about 5300
# allocations, some minutes) for every AF_DIFFUSION_STRIDE-th k (default 1:
# every k; .ci/run samples it)
AF_BUILD = build/alloc-fail
AF_BINS = $(patsubst tests/alloc_fail/%.c,$(AF_BUILD)/%,$(wildcard tests/alloc_fail/sweep_*.c))
AF_DIFFUSION_STRIDE = 1
alloc-fail: deps-test
	@$(MAKE) --no-print-directory $(AF_BINS)
	@TEST_QUIET=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1; \
	  export TEST_QUIET ASAN_OPTIONS UBSAN_OPTIONS; \
	  $(MAKE) --no-print-directory run-tests TESTS="$(filter-out %/sweep_diffusion,$(AF_BINS))" && \
	  AF_STRIDE=$(AF_DIFFUSION_STRIDE) $(MAKE) --no-print-directory run-tests TESTS="$(AF_BUILD)/sweep_diffusion"

$(AF_BUILD)/%: tests/alloc_fail/%.c $(HEADERS) $(EXAMPLE_SRC)
	@mkdir -p $(AF_BUILD)
	$(CC) -std=c99 -O1 -g $(SAN_FLAGS) $(WARN) -I. -o $@ $< $(LDLIBS)

clean:
	rm -rf build out
