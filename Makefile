# hass — plain GNU Makefile.  `make` builds build/hass and build/libhass.a (release).
#   make BUILD=debug|asan|tsan   -> build/<variant>/...
#   make test                    -> release + asan suites
#   make bench                   -> benchmarks (results appended to bench/PERF.md by bench/run.sh)
#   make O=build/mine            -> private output folder (parallel work trees)
BUILD ?= release
CC    ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif

ifeq ($(BUILD),release)
O ?= build
else
O ?= build/$(BUILD)
endif

WARN   := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Werror
CFLAGS_BASE := -std=c17 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -pthread -MMD -MP \
               -Iinclude -Isrc -I/usr/include/cjson
LDLIBS := -lcjson -lpcre2-8 -lmicrohttpd -ldl -lpthread -lm

ifeq ($(BUILD),release)
OPT := -O2 -g
else ifeq ($(BUILD),debug)
OPT := -O0 -g3
else ifeq ($(BUILD),asan)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
       -DHASS_SANITIZE
LDFLAGS += -fsanitize=address,undefined
else ifeq ($(BUILD),avx512emu)
# The AVX-512 (and AVX-VNNI) kernels compiled for AVX2 over SIMDe and chosen at run time as if
# the CPU had AVX-512 + AVX512_BF16 + VNNI: checks them on machines that do not have it
# (src/ops/avx512_emu.h).
OPT := -O2 -g -DHASS_AVX512_EMU -Wno-psabi
else ifeq ($(BUILD),tsan)
OPT := -O1 -g -fsanitize=thread
LDFLAGS += -fsanitize=thread
else
$(error unknown BUILD=$(BUILD))
endif
ifeq ($(NATIVE),1)
OPT += -march=native
endif
CFLAGS += $(CFLAGS_BASE) $(OPT)

# quiet by default; `make V=1` prints the commands
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

# ISA-specific kernel files: compiled with their own flags, chosen at run time.
ISA_AVX2   := -mavx2 -mfma -mf16c
ISA_AVX512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 \
              -mavx512vnni
ISA_AMX    := $(ISA_AVX512) -mamx-tile -mamx-bf16 -mamx-int8
ISA_AVXVNNI:= $(ISA_AVX2) -mavxvnni
ifeq ($(BUILD),avx512emu)
ISA_AVX512 := $(ISA_AVX2)
ISA_AMX    := $(ISA_AVX2)
ISA_AVXVNNI:= $(ISA_AVX2)
endif

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC:= $(sort $(wildcard bench/bench_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(O)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(O)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(O)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(O)/bench/%)

.PHONY: all test test-release test-asan bench deps clean format format-check tidy fuzz check
all: $(O)/hass $(O)/libhass.a

$(O)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(ISA_AVX2) -c $< -o $@
$(O)/obj/%_avxvnni.o: %_avxvnni.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(ISA_AVXVNNI) -c $< -o $@
$(O)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(ISA_AVX512) -c $< -o $@
$(O)/obj/%_amx.o: %_amx.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(ISA_AMX) -c $< -o $@
$(O)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# the commit in `hass version` and in eval reports: version.c is rebuilt on every build
HASS_COMMIT := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(O)/obj/src/cli/version.o: CFLAGS += -DHASS_COMMIT=\"$(HASS_COMMIT)\"
$(O)/obj/src/cli/version.o: FORCE
FORCE:
.PHONY: FORCE

$(O)/libhass.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/hass: $(CLI_OBJ) $(O)/libhass.a
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $(CLI_OBJ) $(O)/libhass.a $(LDLIBS) -o $@

$(O)/tests/%: tests/%.c $(O)/libhass.a tests/check.h tests/stories_fixture.h
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) $< $(O)/libhass.a $(LDLIBS) -o $@

$(O)/bench/%: bench/%.c $(O)/libhass.a
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(O)/libhass.a $(LDLIBS) -o $@

# the server's test is a libcurl client
$(O)/tests/test_serve: LDLIBS += -lcurl
# the chat's test drives it through a pseudo terminal (forkpty)
$(O)/tests/test_chat: LDLIBS += -lutil

tests-bin: $(TEST_BIN) $(O)/hass
.PHONY: tests-bin

# The suite: release build, the same tests under ASan+UBSan, the thread pool and the parallel
# kernels (incl. the model's batch-invariance tests) under ThreadSanitizer, and the kernel, model,
# golden-output and speculative tests with the AVX-512 kernels over SIMDe (BUILD=avx512emu) where
# the CPU has no AVX-512 (where it has, the release build already runs them natively).
TSAN_TESTS := test_threadpool test_ops test_model test_bpe_train test_gemm test_pretrain \
              test_serve test_quant
EMU_TESTS  := test_ops test_model test_generate test_spec test_api test_quant
EMU_BUILD  := $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null || echo build/avx512emu)
test:
	$(MAKE) --no-print-directory BUILD=release tests-bin
	$(MAKE) --no-print-directory BUILD=asan tests-bin
	$(MAKE) --no-print-directory BUILD=tsan $(TSAN_TESTS:%=build/tsan/tests/%) build/tsan/hass
	$(if $(EMU_BUILD),$(MAKE) --no-print-directory BUILD=avx512emu $(EMU_TESTS:%=$(EMU_BUILD)/tests/%))
	HASS_BUILDS="build build/asan build/tsan $(EMU_BUILD)" tests/run_tests.sh

test-release:
	$(MAKE) --no-print-directory BUILD=release tests-bin
	HASS_BUILDS="build" tests/run_tests.sh

bench: $(BENCH_BIN) $(O)/hass
	bench/run.sh $(O)

deps:
	tools/deps.sh

# libFuzzer targets: the library is compiled once with coverage + ASan/UBSan into
# build/fuzz/libhass.a, each fuzz/fuzz_X.c links against it (see docs/fuzzing.md).
FUZZ_TARGETS := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/fuzz_*.c))
FUZZ_CFLAGS  := $(CFLAGS_BASE) -O1 -g -fno-omit-frame-pointer $(ISA_AVX2) -DHASS_NO_AVX512 \
                -fsanitize=fuzzer-no-link,address,undefined
FUZZ_OBJ     := $(patsubst %.c,build/fuzz/obj/%.o,$(filter-out %_avx512.c %_avxvnni.c,$(LIB_SRC)))
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
build/fuzz/libhass.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^
build/fuzz/%: fuzz/%.c build/fuzz/libhass.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $< build/fuzz/libhass.a $(LDLIBS) -o $@
fuzz: $(FUZZ_TARGETS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
tidy:
	clang-tidy $$(git ls-files 'src/*.c') -- $(CFLAGS_BASE)
check: format-check test

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(wildcard build/fuzz/obj/src/*/*.d)
