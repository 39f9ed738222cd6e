# Airlock: build, install, run, test.
PREFIX ?= $(HOME)/.local
LIBDIR ?= $(PREFIX)/lib/airlock
ICD_DIR ?= $(PREFIX)/share/vulkan/icd.d
MANIFEST = $(ICD_DIR)/airlock_icd.x86_64.json

.PHONY: all build install uninstall demo test

all: build

build:
	cargo build --release -p icd -p server

# Installs the library and the server side by side, and the loader manifest that names them.
install: build
	install -d "$(LIBDIR)" "$(ICD_DIR)"
	install -m 755 target/release/libvulkan_airlock.so "$(LIBDIR)/libvulkan_airlock.so"
	install -m 755 target/release/airlock-server "$(LIBDIR)/airlock-server"
	sed 's|@LIBRARY_PATH@|$(abspath $(LIBDIR))/libvulkan_airlock.so|' manifests/airlock_icd.json.in > "$(MANIFEST)"
	@echo "installed: $(MANIFEST)"
	@echo "use it with: VK_DRIVER_FILES=$(MANIFEST) <your Vulkan program>"

uninstall:
	rm -f "$(MANIFEST)" "$(LIBDIR)/libvulkan_airlock.so" "$(LIBDIR)/airlock-server"
	-rmdir "$(LIBDIR)"

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh
