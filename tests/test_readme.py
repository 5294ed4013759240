"""README's Python examples run as written (those that need PyTorch or a GPU where there is one)."""

import pathlib
import re

import pytest

import fastcov

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _first_line(example):
    return example.splitlines()[0]


def test_the_readme_has_its_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("example", EXAMPLES, ids=[_first_line(e)[:40] for e in EXAMPLES])
def test_readme_example_runs(example):
    on_gpu = 'device="cuda"' in example
    if "import torch" in example or on_gpu:
        torch = pytest.importorskip("torch")
        if on_gpu and not ("cuda" in fastcov.available_backends() and torch.cuda.is_available()):
            pytest.skip("the example needs a GPU")
    exec(compile(example, str(README), "exec"), {})
