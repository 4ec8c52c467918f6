"""`make notebook` works: JupyterLab from .venv serves the notebook and starts its kernel with this
Python (tests/test_notebook.py runs the notebook on that kernel)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what} within {seconds:.0f} s"
        time.sleep(0.5)


@pytest.mark.slow
def test_make_notebook_serves_the_notebook_with_this_python_as_kernel(tmp_path):
    port = free_port()
    options = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={TOKEN} --LabApp.news_url=None"
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    server = subprocess.Popen(
        ["make", "--no-print-directory", "notebook", f"NOTEBOOK_ARGS={options}"],
        cwd=ROOT,
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        start_new_session=True,  # make and the server it starts are stopped together
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        contents = wait_for(lambda: server.poll() is None and call(f"{base}/contents?token={TOKEN}"), 60, "no answer")
        assert "animal_img_denoising.ipynb" in {item["name"] for item in contents["content"]}
        notebook = call(f"{base}/contents/animal_img_denoising.ipynb?token={TOKEN}")
        specs = call(f"{base}/kernelspecs?token={TOKEN}")
        kernel_name = notebook["content"]["metadata"]["kernelspec"]["name"]
        # "python" in a kernelspec means the server's own interpreter: .venv's, which has ipykernel
        assert specs["kernelspecs"][kernel_name]["spec"]["argv"][0] in ("python", sys.executable)
        kernel = call(f"{base}/kernels?token={TOKEN}", "POST")  # raises unless the kernel process started
        assert [k["id"] for k in call(f"{base}/kernels?token={TOKEN}")] == [kernel["id"]]
        call(f"{base}/kernels/{kernel['id']}?token={TOKEN}", "DELETE")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
