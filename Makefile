# Garden.Actors — `make run` sets up and runs the daemon; `make test` sets up and runs every test; `make unit` runs the
# tests that need neither root nor an install.
SHELL := /bin/bash
PREFIX ?= /usr/local
ROOTFS ?= $(PREFIX)/share/garden-actors/rootfs
LIBDIR ?= $(PREFIX)/lib/garden-actors
# gardend.service (dist/gardend.service.in with @PREFIX@ filled in) goes here; `systemctl enable --now gardend` starts it
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
OUT := $(CURDIR)/out
# gardend is published ReadyToRun for this machine's runtime (its start is mostly JIT otherwise; see src/Host/Garden.Host.csproj)
RID ?= linux-$(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
DOTNET ?= dotnet
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE := 1
DEBS := runc busybox-static iptables iproute2 e2fsprogs file
# images: the tests build images with umoci, copy them with skopeo and serve them from a local docker-registry
DEBS += docker-registry skopeo umoci
# the agent's native part (native/spawn.c, with linux/seccomp.h) and the tests' static attack programs are built with gcc
DEBS += gcc libc6-dev
SOURCES := $(shell find src -name '*.cs' -o -name '*.csproj' -o -name '*.proto' -o -name '*.conf' -o -name '*.c' | grep -v '/obj/\|/bin/') Directory.Packages.props Directory.Build.props

.PHONY: install deps build run test unit bench clean uninstall gats

install: deps $(OUT)/.installed $(ROOTFS)/.garden-rootfs

deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@command -v $(DOTNET) >/dev/null || { echo "make: the .NET SDK (dotnet) is required" >&2; exit 1; }

build: $(OUT)/.built

# out/cli-jit: the CLI's assembly on the JIT with the Akka.Remote client (src/Cli/Jit), which the NativeAOT `garden` runs for akka.tcp://
# addresses (Akka.NET does not run under NativeAOT); installed to $(LIBDIR)/cli-jit.
$(OUT)/.built: $(SOURCES)
	$(DOTNET) publish src/Agent/Garden.Agent.csproj -c Release -o $(OUT)/bin --nologo -v:q
	$(DOTNET) publish src/Cli/Garden.Cli.csproj -c Release -o $(OUT)/bin --nologo -v:q
	$(DOTNET) publish src/Cli/Jit/Garden.Cli.Jit.csproj -c Release -o $(OUT)/cli-jit --nologo -v:q
	$(DOTNET) publish src/Host/Garden.Host.csproj -c Release -r $(RID) --self-contained false -p:PublishReadyToRun=true -o $(OUT)/gardend --nologo -v:q
	@touch $@

$(OUT)/.installed: $(OUT)/.built dist/gardend.service.in
	install -d $(PREFIX)/bin $(LIBDIR)
	rm -rf $(LIBDIR)/gardend.new && cp -a $(OUT)/gardend $(LIBDIR)/gardend.new && rm -rf $(LIBDIR)/gardend && mv $(LIBDIR)/gardend.new $(LIBDIR)/gardend
	printf '#!/bin/sh\nexec %s %s/gardend/gardend.dll "$$@"\n' "$$(command -v $(DOTNET))" "$(LIBDIR)" > $(PREFIX)/bin/gardend.tmp
	chmod 755 $(PREFIX)/bin/gardend.tmp && mv $(PREFIX)/bin/gardend.tmp $(PREFIX)/bin/gardend
	install -m 755 $(OUT)/bin/garden-agent $(PREFIX)/bin/garden-agent.tmp && mv $(PREFIX)/bin/garden-agent.tmp $(PREFIX)/bin/garden-agent
	rm -rf $(LIBDIR)/cli-jit.new && cp -a $(OUT)/cli-jit $(LIBDIR)/cli-jit.new && rm -rf $(LIBDIR)/cli-jit && mv $(LIBDIR)/cli-jit.new $(LIBDIR)/cli-jit
	install -m 755 $(OUT)/bin/garden $(PREFIX)/bin/garden.tmp && mv $(PREFIX)/bin/garden.tmp $(PREFIX)/bin/garden
	install -d /etc/garden-actors && [ -e /etc/garden-actors/gardend.conf ] || install -m 644 hocon/gardend.conf /etc/garden-actors/gardend.conf
	install -d $(SYSTEMD_UNIT_DIR) && sed 's|@PREFIX@|$(PREFIX)|g' dist/gardend.service.in > $(SYSTEMD_UNIT_DIR)/gardend.service.tmp
	chmod 644 $(SYSTEMD_UNIT_DIR)/gardend.service.tmp && mv $(SYSTEMD_UNIT_DIR)/gardend.service.tmp $(SYSTEMD_UNIT_DIR)/gardend.service
	@if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@touch $@

$(ROOTFS)/.garden-rootfs: scripts/make-rootfs.sh
	bash scripts/make-rootfs.sh $(ROOTFS)
	@touch $@

run: install
	exec $(PREFIX)/bin/gardend --config /etc/garden-actors/gardend.conf

test: install
	bash scripts/test.sh

# Garden's own integration suite (GATS, ../shared/gats) against a gardend of its own serving Garden's HTTP API on a free
# loopback port; prints GATS's summary line. GATS_ARGS passes ginkgo flags: make gats GATS_ARGS="-ginkgo.focus=Lifecycle"
# GATS's "can be contacted after a NetIn" runs `nc HOST PORT` on the host: netcat-openbsd (Debian's default nc), only for gats.
GATS_DEBS := netcat-openbsd
gats: build
	@command -v nc >/dev/null || { echo "installing: $(GATS_DEBS) (a host nc for GATS)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(GATS_DEBS) >/dev/null; }
	bash scripts/gats.sh $(GATS_ARGS)

# The tests that need neither root nor an install (no out/, no rootfs, no runc): the actors on fakes, the CLI's parser,
# the Linux logic on fakes and fake cgroupfs, the agent client. Gated tests carry a "Needs" trait (tests/Garden.Testing/Gates.cs).
unit:
	@command -v $(DOTNET) >/dev/null || { echo "make: the .NET SDK (dotnet) is required" >&2; exit 1; }
	$(DOTNET) test Garden.Unit.slnf -c Release --nologo -v:q --filter "Needs!=root&Needs!=install"

bench: install
	bash bench/run.sh

clean:
	rm -rf $(OUT)
	find . -name bin -o -name obj | grep -E '/(src|tests|bench)/' | xargs rm -rf

uninstall:
	rm -rf $(LIBDIR) $(PREFIX)/bin/gardend $(PREFIX)/bin/garden $(PREFIX)/bin/garden-agent $(ROOTFS) $(SYSTEMD_UNIT_DIR)/gardend.service
