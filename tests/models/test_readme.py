"""The README's "Adding a model" example runs as written and registers the counts it writes."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter after the example: the name it adds is new and listed, and the model
# built from it has the exact counts the example writes (and its paper count, if it gives one).
CHECK = """
import sys

import numpy as np

import models

before = set(models.list_models())
exec(compile(sys.argv[1], "README.md (Adding a model)", "exec"), {"__name__": "__main__"})
new = sorted(set(models.list_models()) - before)
assert len(new) == 1, f"the example should register one new model; it registered {new}"
spec = models.get_spec(new[0])
written = (spec.params, spec.trainable, spec.non_trainable)
assert None not in written, f"the example should write all three counts: {written}"
count = lambda variables: sum(int(np.prod(v.shape)) for v in variables)
model = models.create(new[0])
built = (model.count_params(), count(model.trainable_weights), count(model.non_trainable_weights))
assert built == written, f"{new[0]} builds with {built}, the example writes {written}"
if spec.paper_params:
    trainable = count(models.create(new[0], **spec.paper_overrides).trainable_weights)
    assert abs(trainable - spec.paper_params) <= spec.paper_params_tol, (trainable, spec.paper_params)
print("registered", new[0])
"""


def adding_a_model_example() -> str:
    """The one python block of the README's "### Adding a model" section, dedented."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^### Adding a model\n(.*?)(?=^##+ |\Z)", readme, re.S | re.M)
    assert section, "README.md has no '### Adding a model' section"
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", section.group(1), re.S | re.M)
    assert len(blocks) == 1, f"expected one python block in 'Adding a model', found {len(blocks)}"
    return textwrap.dedent(blocks[0][1])


def test_adding_a_model_example_runs_as_written():
    example = adding_a_model_example()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", CHECK, example], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"README example failed:\n{example}\n{done.stderr[-3000:]}"
    assert done.stdout.startswith("registered ")
