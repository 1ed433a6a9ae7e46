# Two commands set everything up on a fresh machine:
#   make demo   prepare the lab photos, train both models, classify photos sent through Kafka
#   make test   the whole test suite
# Both build the virtualenv (.venv) themselves from the hashed lock files (requirements*.lock).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)

# Local sources when ../shared is beside the checkout (CI, this lab's dev machines); otherwise the
# commands' own defaults (Microsoft's PetImages archive, Keras' public MobileNet weights).
ifneq ($(wildcard $(SHARED)/datasets/ocp-lab),)
export CATDOG_DATA_SOURCE ?= $(SHARED)/datasets/ocp-lab
PRETRAINED_SOURCE ?= $(SHARED)/datasets/kaggle-dev
# The lab's 100 photos are all used by notebook 01: notebook 02 evaluates on Kaggle photos instead.
export CATDOG_EVAL_SOURCE ?= $(PRETRAINED_SOURCE)
endif
ifneq ($(wildcard $(SHARED)/models/imagenet),)
export CATDOG_WEIGHTS_DIR ?= $(SHARED)/models/imagenet
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2
PRETRAINED_PER_CLASS ?= 300
DEMO_PHOTOS ?= data/validation
LAB_PORT ?= 8888

.PHONY: venv lock demo data models predict test lab lab-secure bench clean help

help:
	@echo "make demo   prepare data, train both models, run the Kafka round trip"
	@echo "make test   run every test"
	@echo "make lab    JupyterLab with the broker and the classifier service running"
	@echo "make lab-secure  the same lab on a broker that enforces the room's TLS, logins and ACLs"
	@echo "make clean  remove data, models and the virtualenv"

# Exactly the locked stack, every file checked against its hash (requirements-dev.lock: the runtime lock,
# which the image installs, plus the test tools). `make lock` refreshes both after editing requirements*.txt.
# pip installs uv alone first (its locked lines: it has no dependencies), then uv installs the rest: the
# same files and hashes, fetched in parallel. Compiled to bytecode as pip does: where PYTHONDONTWRITEBYTECODE
# is set (CI), every process would otherwise compile TensorFlow's sources again (15 s per import).
# --native-tls: the system's CA store, as pip's cert setting gives pip (a TLS-inspecting proxy's CA is there;
# uv's own roots refuse it unless SSL_CERT_FILE happens to be set).
$(BIN)/catdog: requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	awk '/^[^ #]/ {keep = /^uv==/} keep' requirements-dev.lock > $(VENV)/uv.lock
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(VENV)/uv.lock
	$(BIN)/uv pip install --quiet --native-tls --compile-bytecode --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --native-tls --python $(BIN)/python --no-deps -e .
	@touch $@

venv: $(BIN)/catdog

# The hashed lock files, from the pins in requirements.txt and requirements-dev.txt, by uv (pinned in
# requirements-dev.txt). Versions already locked are kept; LOCK_ARGS=--upgrade takes the newest allowed.
LOCK := $(BIN)/uv pip compile --native-tls --universal --python-version 3.11 --generate-hashes --quiet $(LOCK_ARGS)
lock: venv
	$(LOCK) requirements.txt -o requirements.lock
	$(LOCK) requirements.txt requirements-dev.txt -c requirements.lock -o requirements-dev.lock

# Data and models are files: a second `make demo` reuses them instead of training again.
data/manifest.csv: | venv
	$(BIN)/catdog data prepare --no-progress

models/quick.keras: data/manifest.csv
	$(BIN)/catdog train quick $(if $(QUICK_EPOCHS),--epochs $(QUICK_EPOCHS))

models/pretrained.keras: | venv
	$(BIN)/catdog train pretrained --no-progress --per-class $(PRETRAINED_PER_CLASS) \
		$(if $(PRETRAINED_SOURCE),--source $(PRETRAINED_SOURCE))

data: data/manifest.csv
models: models/quick.keras models/pretrained.keras

predict: models
	$(BIN)/catdog predict $(DEMO_PHOTOS)

demo: models
	BIN=$(BIN) DEMO_PHOTOS=$(DEMO_PHOTOS) bash scripts/demo.sh

# The package's tests (the browser walk of `make lab` among them: Chromium is installed if missing and
# we are root, else named and the run fails), then the notebooks' solved copy with nbval (01 at full size).
test: venv
	bash scripts/system-packages.sh
	$(BIN)/python -m pytest -n 2 --dist loadscope
	BIN=$(BIN) PRETRAINED_SOURCE=$(PRETRAINED_SOURCE) bash scripts/test-notebooks.sh

# JupyterLab on the notebooks, beside the embedded broker and the classifier service. A token is
# always required: $$JUPYTER_TOKEN, or a fresh random one printed. LAB_ARGS: more `jupyter lab` options.
# The room's challenge for `make lab`, made once: photos the lab's models never trained on, under neutral
# names, the answers apart (the wall scores submissions against them). Delete the folder for a new one;
# LAB_CHALLENGE= (empty): no challenge.
LAB_CHALLENGE ?= .lab-challenge
lab: models $(if $(LAB_CHALLENGE),$(LAB_CHALLENGE)/answers.json)
	@BIN=$(BIN) LAB_PORT=$(LAB_PORT) CATDOG_LAB_CHALLENGE=$(LAB_CHALLENGE) bash scripts/lab.sh $(LAB_ARGS)

ifneq ($(LAB_CHALLENGE),)
$(LAB_CHALLENGE)/answers.json: | models
	$(BIN)/catdog challenge make --per-class 10 --out $(LAB_CHALLENGE) >/dev/null
endif

# The same lab as one learner of a room sees it: a broker that enforces TLS (the room's CA), SCRAM logins
# and the room's ACLs (the tests' kfake, from ../shared/tools), the classifier and the wall as the room's
# users, JupyterLab as the learner LAB_LEARNER of a one-learner room written to $(LAB_ROOM) once.
LAB_ROOM ?= .lab-secure/room
LAB_LEARNER ?= Ada
lab-secure: models
	@[ -f $(LAB_ROOM)/secrets.json ] || $(BIN)/catdog room --learners "$(LAB_LEARNER)" --out $(LAB_ROOM) >/dev/null
	@BIN=$(BIN) LAB_PORT=$(LAB_PORT) CATDOG_LAB_ROOM=$(LAB_ROOM) CATDOG_SHARED=$(SHARED) bash scripts/lab.sh $(LAB_ARGS)

clean:
	rm -rf data/training data/validation data/pretrained data/*.csv models/*.keras models/*.json models/*.png .lab-challenge $(VENV)

# Benchmarks (ratios measured in one run; figures in benchmarks/RESULTS.md). BENCH_ARGS=--smoke: seconds.
bench: venv
	$(BIN)/python benchmarks/training.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/pipeline.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/accuracy.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/backbone_sizes.py $(BENCH_ARGS)
