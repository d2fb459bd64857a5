"""Every Python snippet in the README and docs/ runs as written, after the README's own
quick-start commands (a quick `make train` and a test image named shoe.png)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets(path: Path) -> list[str]:
    return SNIPPET.findall(path.read_text())


def test_the_documents_have_snippets_to_check():
    assert len(snippets(ROOT / "README.md")) >= 2
    assert sum(len(snippets(path)) for path in DOCUMENTS) >= 5


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory, fmnist):
    """The state the README's commands leave: a trained, exported fmnist-mobilenetv2."""
    cwd = tmp_path_factory.mktemp("readme")
    command = [
        sys.executable,
        str(ROOT / "pipelines" / "train.py"),
        f"--config={ROOT / 'configs' / 'train.py'}:quick",
        "--config.model.args=alpha=0.35",
        "--config.schedule.epochs=1",
    ]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    image, _ = next(fmnist.test.filter(lambda x, y: y == 5).as_numpy_iterator())  # a sandal
    Image.fromarray(np.squeeze(image)).save(cwd / "shoe.png")
    return cwd


@pytest.mark.slow  # a quick training run first, and the snippets train one more
@pytest.mark.parametrize("path", [p for p in DOCUMENTS if snippets(p)], ids=lambda p: p.name)
def test_snippets_run_as_written(path, quick_start):
    code = "\n".join(snippets(path))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=quick_start, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{path.name}:\n{result.stderr[-3000:]}"
