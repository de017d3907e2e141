# modular.h - build, test, run and measure.
#
#   make            build the examples and the tests
#   make run        the main job: build the examples and run them
#   make test       build and run every test (tests/test_*.c, and the C++ check)
#   make sanitize   the tests under -fsanitize=address,undefined
#   make valgrind   the tests under valgrind (memcheck)
#   make bench      the benchmarks (tests/bench/*.c) with reference libraries
#   make CC=clang test   the same with clang
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

.PHONY: all run test sanitize valgrind bench clean deps-build deps-test deps-valgrind deps-bench examples tests

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

run: deps-build
	@$(MAKE) --no-print-directory examples
	@mkdir -p out
	@for e in $(EXAMPLES); do echo "== $$e"; ./$$e || exit 1; done

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

$(BUILD)/%: tests/bench/%.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -O3 -o $@ $< $(LDLIBS) $(BENCH_LIBS)

clean:
	rm -rf build out
