# Airlock: build, install, run, test.
PREFIX ?= $(HOME)/.local
# release, or debug (what the tests install from).
PROFILE ?= release
LIBDIR ?= $(PREFIX)/lib/airlock
BINDIR ?= $(PREFIX)/bin
# Airlock's own manifest, which airlock-run points the loader at: every other program goes on
# seeing the drivers it saw before.
MANIFEST_DIR ?= $(PREFIX)/share/airlock
MANIFEST = $(MANIFEST_DIR)/airlock_icd.x86_64.json
# SYSTEM_ICD=1 also lists Airlock among the drivers every program sees (beside native
# lavapipe, which most programs then keep using): the loader's directory under PREFIX.
SYSTEM_ICD ?= 0
ICD_DIR ?= $(PREFIX)/share/vulkan/icd.d
# The per-user socket and its server (systemd user units): programs hardened with PR_SET_MDWE
# need nothing else (`systemctl --user enable --now airlock.socket`).
UNIT_DIR ?= $(PREFIX)/share/systemd/user

CARGO_PROFILE = $(if $(filter release,$(PROFILE)),--release,)

.PHONY: all build install uninstall demo test

all: build

build:
	cargo build $(CARGO_PROFILE) -p icd -p server

# Installs the library and the server side by side, the manifest that names them, and
# airlock-run.
install: build
	install -d "$(LIBDIR)" "$(MANIFEST_DIR)" "$(BINDIR)" "$(UNIT_DIR)"
	install -m 755 target/$(PROFILE)/libvulkan_airlock.so "$(LIBDIR)/libvulkan_airlock.so"
	install -m 755 target/$(PROFILE)/airlock-server "$(LIBDIR)/airlock-server"
	sed 's|@LIBRARY_PATH@|$(abspath $(LIBDIR))/libvulkan_airlock.so|' manifests/airlock_icd.json.in > "$(MANIFEST)"
	sed 's|@MANIFEST@|$(abspath $(MANIFEST))|' scripts/airlock-run.in > "$(BINDIR)/airlock-run"
	chmod 755 "$(BINDIR)/airlock-run"
	install -m 644 manifests/airlock.socket "$(UNIT_DIR)/airlock.socket"
	sed 's|@LIBDIR@|$(abspath $(LIBDIR))|' manifests/airlock@.service.in > "$(UNIT_DIR)/airlock@.service"
	if [ "$(SYSTEM_ICD)" = 1 ]; then install -d "$(ICD_DIR)" && cp "$(MANIFEST)" "$(ICD_DIR)/"; fi
	@echo "installed: $(BINDIR)/airlock-run and $(MANIFEST)"
	@echo "use it with: airlock-run <your Vulkan program>"
	@echo "hardened (PR_SET_MDWE) programs: systemctl --user enable --now airlock.socket"

uninstall:
	rm -f "$(MANIFEST)" "$(BINDIR)/airlock-run" "$(ICD_DIR)/airlock_icd.x86_64.json" \
		"$(UNIT_DIR)/airlock.socket" "$(UNIT_DIR)/airlock@.service" \
		"$(LIBDIR)/libvulkan_airlock.so" "$(LIBDIR)/airlock-server"
	-rmdir "$(LIBDIR)" "$(MANIFEST_DIR)"

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh
