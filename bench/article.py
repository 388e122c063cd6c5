"""The article's CIFAR-10 CNN (Conv2D 32-64-64, Dense 64, 10), as source for the benchmarks' IPython
cells: one definition for bench/overhead.py, bench/compare.py and bench/gpu_check.py; and the synthetic data
that bench/compare.py, bench/epoch_start.py and bench/whatif_budget.py train it on."""

CIFAR_CNN = '''
import numpy as np, keras

def cifar_cnn(metrics=("accuracy",)):
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=list(metrics))
    return model
'''


# Synthetic CIFAR-sized data (CIFAR-10 cannot be downloaded on these machines): a cell, ``.format(samples=N)``.
CIFAR_DATA = '''
rng = np.random.default_rng(0)
x = rng.random(({samples}, 32, 32, 3), dtype=np.float32)
y = rng.integers(0, 10, {samples})
'''

# The CNN of PyTorch's beginner tutorial "Training a Classifier" (pytorch/tutorials), for the PyTorch
# benches: the tutorial whose text asks this product's question ("Why don't I notice MASSIVE speedup?").
TORCH_TUTORIAL_NET = '''
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.pool, self.conv2 = torch.nn.Conv2d(3, 6, 5), torch.nn.MaxPool2d(2, 2), torch.nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)
    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))))
'''
