# Two commands set everything up: `make book` and `make test`.
# Both create the virtual environment in .venv first if it is missing.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export T2I_BOOK_BUILD = 1

.PHONY: book test unit lab bench clean clean-cache

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

## make book: build the website into _build/html (chapters are executed at SCALE=tiny)
## jupyter-cache re-runs a chapter only when the notebook changes, so a change to
## the library (src/) clears the executed outputs to keep every page honest.
book: $(STAMP)
	@hash=$$(find src -name '*.py' | sort | xargs cat | sha256sum | cut -c1-16); \
	if [ "$$(cat _build/.src-hash 2>/dev/null)" != "$$hash" ]; then \
	  rm -rf _build/.jupyter_cache _build/.doctrees _build/jupyter_execute; \
	  mkdir -p _build && echo "$$hash" > _build/.src-hash; \
	fi
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "Open _build/html/index.html in a browser (or: $(PY) -m http.server -d _build/html)"

## make test: unit tests, the book build with warnings as errors, then page, browser
## and Colab tests (Chromium for the browser tests is installed first when it is
## missing, and Colab's ipywidgets 7.7.1 into .colab/site, never into .venv)
COLAB_SITE := .colab/site
$(COLAB_SITE)/.installed: | $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps \
	  --target $(COLAB_SITE) --upgrade ipywidgets==7.7.1 widgetsnbextension==3.6.10 \
	  jupyterlab-widgets==1.1.11 ipython-genutils==0.2.0
	touch $@

test: $(STAMP) $(COLAB_SITE)/.installed
	.ci/ensure-chromium $(VENV)
	$(PY) -m pytest -m "not book"
	$(MAKE) book
	$(PY) -m pytest -m book

## make bench: ours against the reference implementations (taming-transformers,
## vector-quantize-pytorch, openai's DALL-E), installed into .bench/site, never
## into .venv; writes book/_data/benchmarks-cpu.json (or -gpu on a GPU), which
## the benchmarks page renders. About 10 minutes on 2 CPU cores.
BENCH_SITE := .bench/site
$(BENCH_SITE)/.installed: benchmarks/requirements.txt | $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps \
	  --target $(BENCH_SITE) --upgrade -r benchmarks/requirements.txt
	touch $@

bench: $(STAMP) $(BENCH_SITE)/.installed
	PYTHONPATH=$(BENCH_SITE) $(PY) -m benchmarks $(BENCH_ARGS)

## make lab: open the chapters in JupyterLab with live widgets
lab: $(STAMP)
	T2I_BOOK_BUILD=0 $(VENV)/bin/jupyter lab chapters/

clean:
	rm -rf _build

## make clean-cache: forget trained models (they live in $$T2I_CACHE, default ~/.cache/t2i)
clean-cache:
	rm -rf "$${T2I_CACHE:-$$HOME/.cache/t2i}"
