"""Pictures of what statefire shows a person, taken in a real browser (headless Chromium).

Not a test (CI has no browser): run it by hand after changing the demo, the
notebook or the site's look, then look at the pictures.

    apt-get install -y chromium            # Debian's package
    .venv/bin/python docs/screenshots.py [--only demo|notebook|site]

- demo: runs examples/demo.py into build/screenshots/runs/demo, serves it with
  TensorBoard on 127.0.0.1 and photographs the Custom Scalars dashboard:
  docs/img/demo_comparison_charts.png; copies the demo's data-flow picture
  to docs/img/demo_flow.png. The README shows both.
- notebook: executes examples/quickstart.ipynb in a kernel, exports the cells
  that show the state's HTML view after training, photographs them:
  docs/img/notebook_html_view.png (docs/notebooks.md shows it).
- site: builds the site and photographs site/index.html and the features
  reference page (build/screenshots/site_*.png, to look at, not committed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
OUT = ROOT / "build" / "screenshots"
BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
]  # fmt: skip


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found: apt-get install -y chromium")


def screenshot(url: str, path: Path, *, width: int = 1280, height: int = 900, wait_ms: int = 3000) -> Path:
    """Photograph `url` at `width` x `height`; `wait_ms` of virtual time lets scripts render first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo() -> None:
    out = OUT / "runs" / "demo"  # served as `runs/demo`, the path a user of `make demo` sees
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL, timeout=300)
    shutil.copyfile(out / "flow.png", IMG / "demo_flow.png")
    print(f"wrote {(IMG / 'demo_flow.png').relative_to(ROOT)}")
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "tensorboard"), "--logdir", "runs/demo", "--host", "127.0.0.1", "--port", str(port)],
        cwd=OUT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("TensorBoard did not start") from None
                time.sleep(0.5)
        screenshot(f"http://127.0.0.1:{port}/#custom_scalars", IMG / "demo_comparison_charts.png",
                   width=1100, height=600, wait_ms=15000)
    finally:
        server.terminate()
        server.wait(timeout=30)


def notebook() -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    with tempfile.TemporaryDirectory() as cwd:
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": cwd}}).execute()
    # the cells that show the whole state as HTML, after training
    start = next(i for i, c in enumerate(nb.cells) if c.source.startswith("The whole state"))
    shown = nbformat.v4.new_notebook(cells=nb.cells[start:start + 2], metadata=nb.metadata)
    exporter = HTMLExporter(template_name="classic")
    html, _ = exporter.from_notebook_node(shown)
    page = OUT / "notebook_html_view.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(html, encoding="utf-8")
    screenshot(page.as_uri(), IMG / "notebook_html_view.png", width=900, height=900)


def site() -> None:
    subprocess.run([str(BIN / "mkdocs"), "build", "--strict"], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    screenshot((ROOT / "site" / "index.html").as_uri(), OUT / "site_index.png", height=1000)
    screenshot((ROOT / "site" / "reference" / "features.html").as_uri(), OUT / "site_reference_features.png",
               height=1400)
    screenshot((ROOT / "site" / "concepts.html").as_uri() + "?q=hold", OUT / "site_search_offline.png", height=800)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["demo", "notebook", "site"])
    args = parser.parse_args()
    for name, job in [("demo", demo), ("notebook", notebook), ("site", site)]:
        if args.only in (None, name):
            job()


if __name__ == "__main__":
    main()
