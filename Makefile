# The gateway's front door. `make run` starts sandbox + gateway; `make test` builds and tests all.
BAZEL ?= bazel

.PHONY: setup build run test lint bench clean

setup:
	@bash tools/setup.sh

build: setup
	$(BAZEL) build //service:gateway //sandbox:sandbox

run: build
	@bash tools/run.sh

test: setup
	@bash tools/test.sh

lint: setup
	cd proto && ../tools/node_modules/.bin/buf lint

bench: build
	@bash bench/run.sh

clean:
	$(BAZEL) clean
