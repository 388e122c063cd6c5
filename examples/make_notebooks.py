"""Writes examples/quickstart.ipynb, examples/input_pipeline.ipynb and examples/pytorch_quickstart.ipynb
(without outputs).

The notebooks are committed; this script is how they are kept readable in review: edit here, run
`python examples/make_notebooks.py`, commit both.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

CNN = '''def cifar_cnn():
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model'''

DATA = '''import os, socket
import numpy as np
import keras

samples = int(os.environ.get("QUICKSTART_SAMPLES", 50_000))
try:
    socket.setdefaulttimeout(20)  # no network here: fail fast instead of hanging
    (x, y), _ = keras.datasets.cifar10.load_data()
    x, y = x[:samples].astype("float32") / 255.0, y[:samples]
    print(f"Data: the real CIFAR-10, {len(x):,} training images.")
except Exception as exc:
    rng = np.random.default_rng(0)
    x = rng.random((samples, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    print(f"Data: CIFAR-10 could not be downloaded ({type(exc).__name__}), so {samples:,} synthetic images "
          "of the same shape stand in. Timings are the same; accuracy is meaningless.")
finally:
    socket.setdefaulttimeout(None)'''


def quickstart():
    return new_notebook(cells=[
        new_markdown_cell(
            "# colab_magic quickstart: is the GPU helping, and how much?\n\n"
            "The workflow of the article this project grew from: mount Drive, check the runtime's devices, "
            "then train the classic CIFAR-10 CNN (batch 32, 1,563 steps an epoch) and time it on the CPU "
            "and on the GPU side by side. The article did this by hand: about 140 s an epoch on the CPU, "
            "7 s on a Colab GPU."
        ),
        new_code_cell("%load_ext colab_magic"),
        new_markdown_cell("In Colab this mounts Google Drive; anywhere else a local folder stands in, and it says which."),
        new_code_cell("%mount_drive"),
        new_code_cell("%device_info"),
        new_code_cell(DATA),
        new_code_cell(CNN),
        new_markdown_cell(
            "`%%timed_fit --compare --plot` times every step and epoch, samples the GPU and the host while it "
            "trains, then times a copy of the model for about half a second on each device and projects an "
            "epoch, with a 95% interval. "
            "It answers first: one line per fit (where it trained, how fast, the speed-up, and what holds it "
            "back), then the verdicts, the timeline, the comparison, and the details (folded) below them. "
            "The answer opens the cell's output; Keras' own log (`verbose=2`: a line per epoch) stays below it."
        ),
        new_code_cell(
            "%%timed_fit --compare --plot\n"
            "model = cifar_cnn()\n"
            "history = model.fit(x, y, batch_size=32, epochs=2, validation_split=0.1, verbose=2)"
        ),
        new_markdown_cell(
            "Every run is recorded (on Drive once it is mounted), so a CPU-runtime session and a later "
            "GPU-runtime session end up in one table: `%fit_history --compare`."
        ),
        new_code_cell("%fit_history"),
    ])


def input_pipeline():
    return new_notebook(cells=[
        new_markdown_cell(
            "# An input-bound fit, and its fix\n\n"
            "A `tf.data` pipeline whose `map` is slow (a 20 ms sleep per batch stands for a slow disk). "
            "`--input-check on` times a copy of the model on one batch held in memory: the difference from "
            "the real step is the time each step waits for data."
        ),
        new_code_cell("%load_ext colab_magic"),
        new_code_cell(
            "import time\nimport numpy as np, tensorflow as tf, keras\n\n"
            "rng = np.random.default_rng(0)\n"
            "X = rng.random((32 * 40, 512), dtype=np.float32)\n"
            "Y = rng.random((32 * 40, 1), dtype=np.float32)\n\n"
            "def slow(a):\n    time.sleep(0.020)\n    return a\n\n"
            "def slow_map(a, b):\n    a = tf.numpy_function(slow, [a], tf.float32)\n    a.set_shape([None, 512])\n    return a, b\n\n"
            "def make_model():\n"
            "    m = keras.Sequential([keras.Input((512,)), keras.layers.Dense(2048, activation=\"relu\"),\n"
            "                          keras.layers.Dense(2048, activation=\"relu\"), keras.layers.Dense(1)])\n"
            "    m.compile(optimizer=\"sgd\", loss=\"mse\")\n    return m\n\n"
            "batches = tf.data.Dataset.from_tensor_slices((X, Y)).batch(32)"
        ),
        new_markdown_cell(
            "The naive pipeline maps one batch at a time and does not prefetch (TensorFlow's automatic "
            "prefetch injection is switched off to show what a pipeline without prefetch does)."
        ),
        new_code_cell(
            "no_prefetch = tf.data.Options()\nno_prefetch.experimental_optimization.inject_prefetch = False\n"
            "naive = batches.map(slow_map).with_options(no_prefetch)"
        ),
        new_code_cell("%%timed_fit --input-check on --no-history\nhistory = make_model().fit(naive, epochs=2, verbose=2)"),
        new_markdown_cell("The fix the verdict suggests: map in parallel and prefetch, so the data is ready when a step needs it."),
        new_code_cell("fixed = batches.map(slow_map, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)"),
        new_code_cell("%%timed_fit --input-check on --no-history\nhistory = make_model().fit(fixed, epochs=2, verbose=2)"),
    ])


TORCH_DATA = '''import os, time
import torch
from torch.utils.data import DataLoader, Dataset

samples = int(os.environ.get("PYTORCH_QUICKSTART_SAMPLES", 8_192))
device = "cuda" if torch.cuda.is_available() else "cpu"

class Images(Dataset):
    """CIFAR-sized images made here (no download): each one takes 0.3 ms to "decode", as a JPEG read
    from disk would, then a random flip."""
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 3, 32, 32, generator=g)
        self.y = torch.randint(0, 10, (n,), generator=g)
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        time.sleep(0.0003)
        image = self.x[i]
        return (image.flip(2) if torch.rand(()) < 0.5 else image), self.y[i]

images = Images(samples)
print(f"Data: {samples:,} synthetic CIFAR-sized images (no dataset is downloaded); training on {device}.")'''

TORCH_NET = '''class Net(torch.nn.Module):  # the CNN of PyTorch's tutorial "Training a Classifier"
    def __init__(self):
        super().__init__()
        self.conv1, self.pool, self.conv2 = torch.nn.Conv2d(3, 6, 5), torch.nn.MaxPool2d(2, 2), torch.nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)
    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

def train(loader, epochs=2):
    model = Net().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    for epoch in range(epochs):
        for inputs, labels in loader:
            inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()'''


def pytorch_quickstart():
    return new_notebook(cells=[
        new_markdown_cell(
            "# colab_magic with PyTorch: your own training loop, timed\n\n"
            "`%%timed_fit` sees any PyTorch loop: every `optimizer.step()` is a step, every new pass over a "
            "`DataLoader` an epoch, and the time spent waiting in the `DataLoader` is measured in your own steps. "
            "Hugging Face's `Trainer` and Lightning's `Trainer` are PyTorch loops too: nothing to change."
        ),
        new_code_cell("%load_ext colab_magic"),
        new_markdown_cell("Is there a GPU, and does PyTorch see it? `--frameworks torch` imports PyTorch to ask it."),
        new_code_cell("%device_info --frameworks torch"),
        new_code_cell(TORCH_DATA),
        new_code_cell(TORCH_NET),
        new_markdown_cell(
            "A plain `DataLoader` makes each batch in the training process, between steps. "
            "`-v first` keeps the result in a variable."
        ),
        new_code_cell("%%timed_fit -v first\ntrain(DataLoader(images, batch_size=32, shuffle=True))"),
        new_markdown_cell(
            "The fix the verdict names: worker processes make the batches while the model trains "
            "(and pinned memory speeds the copy to a GPU)."
        ),
        new_code_cell(
            "%%timed_fit -v fixed\n"
            "train(DataLoader(images, batch_size=32, shuffle=True, num_workers=2, pin_memory=device == 'cuda',\n"
            "                 persistent_workers=True))"
        ),
        new_markdown_cell(
            "Where it still says input-bound, the workers cannot keep up: each makes whole batches, so a batch "
            "that takes longer to make than a step takes to train needs more of them, or a cheaper `__getitem__` "
            "(decode once and keep the tensors). The figures, side by side:"
        ),
        new_code_cell(
            "before, after = first.reports[0], fixed.reports[0]\n"
            "print(f\"Waiting for data: {before.input_wait.wait_share:.0%} of a step with num_workers=0, \"\n"
            "      f\"{after.input_wait.wait_share:.0%} with 2; {1000 * before.step.mean:.1f} ms -> \"\n"
            "      f\"{1000 * after.step.mean:.1f} ms a step.\")"
        ),
        new_markdown_cell("The history keeps every run, from every notebook; `-n 2` lists the two above."),
        new_code_cell("%fit_history -n 2"),
    ])


if __name__ == "__main__":
    for name, nb in (("quickstart", quickstart()), ("input_pipeline", input_pipeline()),
                     ("pytorch_quickstart", pytorch_quickstart())):
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(f"wrote examples/{name}.ipynb")
