# Thin wrapper over CMake. `make` builds build/dsinfer; `make test` runs every test.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build unit test integration asan fuzz clean venv real-models

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

venv: .venv/.done
.venv/.done: requirements-test.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r requirements-test.txt
	touch $@

integration: build venv
	.venv/bin/python -m pytest -q tests/integration

test: unit integration

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDSINFER_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS)

# libFuzzer targets, each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DDSINFER_SANITIZE=ON -DDSINFER_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS)
	@for f in build-fuzz/fuzz_*; do \
	  name=$$(basename $$f); corpus=fuzz/corpus/$${name#fuzz_}; mkdir -p build-fuzz/corpus-$$name; \
	  echo "== $$name ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 build-fuzz/corpus-$$name $$( [ -d $$corpus ] && echo $$corpus ) \
	     >build-fuzz/log-$$name 2>&1 || { tail -n 40 build-fuzz/log-$$name; exit 1; }; tail -n 2 build-fuzz/log-$$name; \
	done

# Real models too large for CI (tools/fetch-models; results in docs/models.md).
real-models: build venv
	DSINFER_LARGE_MODELS=1 .venv/bin/python -m pytest -q tests/integration/test_real_models.py

clean:
	rm -rf $(BUILD) build-asan build-fuzz
