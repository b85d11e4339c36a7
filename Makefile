# amp2s3 — build, test and sanitizer variants.
#
#   make              ./amp2s3 (optimised, warnings are errors)
#   make asan         build/asan/amp2s3  (address + undefined sanitizers)
#   make tsan         build/tsan/amp2s3  (thread sanitizer)
#   make test         unit + integration tests against ./amp2s3
#   make test-asan    the same suite against the ASan/UBSan build
#   make test-tsan    the same suite against the TSan build
#   make check        all three, as CI runs them
#
# Every object of a variant lives under build/<variant>/, so variants never
# mix.  Unit tests are tests/unit/test_*.c, one binary each, linked with
# every module but main.

PKGS     := libcurl zlib yajl libzip libarchive expat openssl inih
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CC       ?= cc
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wpointer-arith -Wvla \
            -Wnull-dereference -Wundef -Wcast-align
CSTD     := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
CFLAGS_BASE := $(CSTD) $(WARN) -Iinclude $(PKG_CFLAGS) -pthread
LDLIBS   := $(PKG_LIBS) -lpthread -lm

VARIANT  ?= release
ifeq ($(VARIANT),release)
  VFLAGS := -O2 -g
else ifeq ($(VARIANT),asan)
  VFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(VARIANT),tsan)
  VFLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
else
  $(error unknown VARIANT $(VARIANT))
endif

B        := build/$(VARIANT)
SRCS     := $(wildcard src/*.c)
OBJS     := $(SRCS:src/%.c=$(B)/%.o)
LIBOBJS  := $(filter-out $(B)/main.o,$(OBJS))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(B)/tools/%)
ifeq ($(VARIANT),release)
  BIN    := amp2s3
else
  BIN    := $(B)/amp2s3
endif

PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man

.PHONY: all asan tsan test test-asan test-tsan check unit clean deps install uninstall

all: $(BIN) $(UNIT_BIN) $(TOOL_BIN)

asan:
	$(MAKE) VARIANT=asan
tsan:
	$(MAKE) VARIANT=tsan

$(BIN): $(OBJS)
	$(CC) $(CFLAGS_BASE) $(VFLAGS) -o $@ $^ $(LDLIBS)

$(B)/%.o: src/%.c $(wildcard include/*.h src/*.h) | $(B)
	$(CC) $(CFLAGS_BASE) $(VFLAGS) -c -o $@ $<

# A unit test may wrap system calls at link time to inject failures, and
# one that tests a module's private parts includes its header from src/.
UNIT_LDFLAGS_test_atomicfile := -Wl,--wrap=fsync,--wrap=rename
UNIT_CFLAGS_test_creds := -Isrc
UNIT_CFLAGS_test_s3_sign := -Isrc

$(B)/tests/%: tests/unit/%.c tests/unit/unit.h $(wildcard src/*.h) $(LIBOBJS) \
    | $(B)
	@mkdir -p $(B)/tests
	$(CC) $(CFLAGS_BASE) $(VFLAGS) -Itests/unit $(UNIT_CFLAGS_$*) -o $@ $< \
	    $(LIBOBJS) $(UNIT_LDFLAGS_$*) $(LDLIBS)

$(B)/tools/%: tests/tools/%.c $(LIBOBJS) | $(B)
	@mkdir -p $(B)/tools
	$(CC) $(CFLAGS_BASE) $(VFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(B):
	@mkdir -p $(B)

# Run every unit test binary, then the integration suite against $(BIN).
test: all
	AMP2S3_BUILD=$(B) AMP2S3_BIN=$(abspath $(BIN)) tests/run.sh

test-asan:
	$(MAKE) VARIANT=asan test
test-tsan:
	$(MAKE) VARIANT=tsan test

check:
	$(MAKE) test
	$(MAKE) test-asan
	$(MAKE) test-tsan

deps:
	scripts/install-deps.sh

# make install PREFIX=/usr DESTDIR=/tmp/pkg
install: amp2s3
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 amp2s3 $(DESTDIR)$(BINDIR)/amp2s3
	install -m 0644 man/amp2s3.1 $(DESTDIR)$(MANDIR)/man1/amp2s3.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/amp2s3 $(DESTDIR)$(MANDIR)/man1/amp2s3.1

clean:
	rm -rf build amp2s3

# --- fuzzing ---
# libFuzzer targets, fuzz/fuzz_<name>.c (see fuzz/README.md).  The modules
# under test are compiled by clang into build/fuzz/ with
# -fsanitize=fuzzer-no-link,address,undefined; each target links only the
# modules it needs, so a module being edited elsewhere cannot break it.
#   make fuzz-build               build/fuzz/fuzz_<name>, every target
#   make fuzz [FUZZ_SECONDS=60]   build, then run each target that long
#                                 (scripts/fuzz.sh)
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_B       := build/fuzz
FUZZ_CFLAGS  := $(CSTD) $(WARN) -Iinclude $(PKG_CFLAGS) -pthread -O1 -g \
                -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=all
FUZZ_LIBS    := $(PKG_LIBS) -lpthread -lm
FUZZ_TARGETS := member unpack s3list envfile hour jsonl creds
FUZZ_MODS_member  := member hour
FUZZ_MODS_unpack  := unpack unpack_member unpack_zip unpack_stream member \
                     hour jsonl localdir atomicfile errbuf cancel
FUZZ_MODS_s3list  := s3 s3_xml s3_request s3_sign s3_multipart s3_object \
                     log retry hour creds creds_http creds_files \
                     creds_process creds_parse version errbuf secret \
                     cancel stall strvec
FUZZ_MODS_envfile := envfile errbuf
FUZZ_MODS_hour    := hour retry
FUZZ_MODS_jsonl   := jsonl
FUZZ_MODS_creds   := creds_parse errbuf
# fuzz_creds tests the creds module's private parsers (src/creds_internal.h).
FUZZ_CFLAGS_creds := -Isrc
# fuzz_unpack checks every path the unpack module opens, renames or unlinks
# (through atomicfile).
FUZZ_LDFLAGS_unpack := -Wl,--wrap=open,--wrap=rename,--wrap=unlink

.PHONY: fuzz fuzz-build fuzz-targets
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz_%)
fuzz-targets:
	@echo $(FUZZ_TARGETS)
fuzz:
	FUZZ_CC=$(FUZZ_CC) scripts/fuzz.sh $(FUZZ_SECONDS)

$(FUZZ_B)/%.o: src/%.c $(wildcard include/*.h src/*.h) | $(FUZZ_B)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

define FUZZ_TARGET_RULE
$(FUZZ_B)/fuzz_$(1): fuzz/fuzz_$(1).c fuzz/fuzz.h \
    $(FUZZ_MODS_$(1):%=$(FUZZ_B)/%.o) | $(FUZZ_B)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) $(FUZZ_CFLAGS_$(1)) -fsanitize=fuzzer \
	    -o $$@ $$< \
	    $(FUZZ_MODS_$(1):%=$(FUZZ_B)/%.o) $(FUZZ_LDFLAGS_$(1)) $$(FUZZ_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_TARGET_RULE,$(t))))

$(FUZZ_B):
	@mkdir -p $(FUZZ_B)
