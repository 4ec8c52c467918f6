# The two commands a new user needs (see README):
#   make demo   set up .venv, train on the embedded photos, evaluate, plot into image/
#   make test   set up .venv, run the test suite (what CI runs, with make lint)
#   make test-fast  the inner loop: every test but those marked slow (under a minute)
#   make notebook   open animal_img_denoising.ipynb in JupyterLab, with .venv's Python as its kernel

PYTHON := .venv/bin/python
VENV := .venv/.installed

$(VENV): requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -r requirements.txt
	touch $(VENV)

.PHONY: demo test test-fast lint notebook
demo: $(VENV)
	$(PYTHON) -m model.train --preset demo --resume
	$(PYTHON) -m model.evaluate --run runs/demo

test: $(VENV)
	$(PYTHON) -m pytest

test-fast: $(VENV)
	$(PYTHON) -m pytest -m "not slow"

# JupyterLab refuses to run as root (containers) unless told; NOTEBOOK_ARGS adds options (the test's port)
notebook: $(VENV)
	.venv/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(NOTEBOOK_ARGS) animal_img_denoising.ipynb

lint: $(VENV)
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
